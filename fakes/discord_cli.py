"""Standalone use of the fake Discord: a small JSON control API under /_fake/ and ``main()`` for
``python -m fakes.discord --port 8788``. The bot under test is pointed at the printed URLs.

Control routes (no auth):
  POST /_fake/slash                 fire one slash command (see ``slash``)
  POST /_fake/click                 a user clicks a button of a message (see ``click``)
  POST /_fake/world                 add N guilds (with channels) and M users in one call (see ``world``)
  GET  /_fake/state                 live gateway sessions, synced commands, world size: "is the bot ready?"
  GET  /_fake/messages[?history=1]  every message; with history=1 each edit with its arrival time; ids=1,2: those
  GET  /_fake/interactions          every interaction: when it was dispatched, when its callback arrived
  GET  /_fake/interactions/ID       one interaction
  GET  /_fake/requests              every REST request (bodies included: large)
  GET  /_fake/stats                 REST request counts by route and status, 429s, fake errors
  POST /_fake/inject                make matching REST requests fail (429 by default) or slow
  POST /_fake/clear_faults          forget injected faults
Times are given twice: ``*_at`` is time.monotonic() in the fake's process, ``*_wall`` the matching
time.time(), so another process can compare them with its own wall clock.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import time
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from fakes.discord_models import JSON, MessageEdit
from fakes.discord_rest import json_response

if TYPE_CHECKING:
    from fakes.discord import FakeDiscord
    from fakes.discord_interactions import InteractionHandle


def register_control(app: web.Application, fake: FakeDiscord) -> None:
    _Control(fake)._routes(app)


class _Control:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/_fake/slash", self.slash)
        app.router.add_post("/_fake/click", self.click)
        app.router.add_get("/_fake/messages", self.messages)
        app.router.add_get("/_fake/requests", self.requests)
        app.router.add_get("/_fake/interactions/{interaction_id}", self.interaction)
        app.router.add_get("/_fake/interactions", self.interaction_list)
        app.router.add_post("/_fake/world", self.world)
        app.router.add_get("/_fake/state", self.state)
        app.router.add_get("/_fake/stats", self.stats)
        app.router.add_post("/_fake/inject", self.inject)
        app.router.add_post("/_fake/clear_faults", self.clear_faults)

    async def slash(self, request: web.Request) -> web.Response:
        """{"name", "options"?, "subcommand"?, "guild_id"?, "channel_id"?, "user_id"?,
        "attachments"?: {option: {"filename", "base64", "content_type"?}}}"""
        body = await request.json()
        try:
            options = dict(body.get("options") or {})
            for opt, spec in (body.get("attachments") or {}).items():
                data = base64.b64decode(spec["base64"])
                options[opt] = self.fake.add_attachment(spec["filename"], data, spec.get("content_type"))
            guild_id = body.get("guild_id", self.fake.default_ids.get("guild_id"))
            handle = await self.fake.slash_command(
                None if guild_id is None else int(guild_id),
                int(body.get("channel_id", self.fake.default_ids.get("channel_id", 0))) or None,
                int(body.get("user_id", self.fake.default_ids.get("user_id", 0))),
                body["name"],
                options,
                subcommand=body.get("subcommand"),
            )
        except (LookupError, ValueError, TypeError, PermissionError, RuntimeError) as exc:
            return json_response({"error": f"{type(exc).__name__}: {exc}"}, 400)
        return json_response({"interaction_id": str(handle.id)})

    async def click(self, request: web.Request) -> web.Response:
        """{"message_id", "custom_id", "user_id"} -> {"interaction_id"}; 400 if the message has no such button."""
        body = await request.json()
        try:
            handle = await self.fake.click_button(int(body["message_id"]), body["custom_id"], int(body["user_id"]))
        except (LookupError, ValueError, TypeError) as exc:
            return json_response({"error": f"{type(exc).__name__}: {exc}"}, 400)
        return json_response({"interaction_id": str(handle.id)})

    async def messages(self, request: web.Request) -> web.Response:
        history = request.query.get("history", "") in ("1", "true")
        wanted = {int(i) for i in request.query.get("ids", "").split(",") if i.strip().isdigit()}
        to_wall = _wall_offset()
        out = []
        chosen = (
            [self.fake.messages[i] for i in wanted if i in self.fake.messages]
            if wanted
            else self.fake.messages.values()
        )
        for m in sorted(chosen, key=lambda m: m.id):
            item: JSON = {
                "id": str(m.id),
                "channel_id": str(m.channel_id),
                "author": m.author.name,
                "content": m.content,
                "embeds": m.embeds,
                "components": m.components,
                "flags": m.flags,
                "deleted": m.deleted,
                "edits": len(m.edits),
                "attachments": [{"filename": a.filename, "size": a.size, "url": a.url} for a in m.attachments],
                "interaction_id": str(m.interaction_id) if m.interaction_id else None,
                "created_at": m.created_at,
                "created_wall": m.created_at + to_wall,
            }
            if history:
                item["first_text"] = m.first_text  # what the message showed when it was made
                item["history"] = [_edit_summary(e, to_wall) for e in m.edits]
            out.append(item)
        return json_response(out)

    async def requests(self, request: web.Request) -> web.Response:
        return json_response([r.to_json() for r in self.fake.requests])

    async def interaction(self, request: web.Request) -> web.Response:
        handle = self.fake.interactions.get(int(request.match_info["interaction_id"]))
        if handle is None:
            return json_response({"error": "unknown interaction"}, 404)
        return json_response(_interaction_summary(handle, _wall_offset()))

    async def interaction_list(self, request: web.Request) -> web.Response:
        to_wall = _wall_offset()
        return json_response([_interaction_summary(h, to_wall) for h in self.fake.interactions.values()])

    async def world(self, request: web.Request) -> web.Response:
        """{"guilds": N, "channels": per guild (1), "users": M, "guilds_per_user": 1} -> the ids made."""
        body = await request.json()
        try:
            made = build_world(
                self.fake,
                guilds=int(body.get("guilds", 1)),
                channels=int(body.get("channels", 1)),
                users=int(body.get("users", 1)),
                guilds_per_user=int(body.get("guilds_per_user", 1)),
            )
        except (TypeError, ValueError) as exc:
            return json_response({"error": f"{type(exc).__name__}: {exc}"}, 400)
        return json_response(made)

    async def state(self, request: web.Request) -> web.Response:
        sessions = self.fake.gateway_sessions
        return json_response(
            {
                "gateway": [
                    {"shard_id": s.shard_id, "shard_count": s.shard_count, "live": s.live, "resumes": s.resumes}
                    for s in sessions.values()
                ],
                "live_sessions": sum(s.live for s in sessions.values()),
                "commands": [c["name"] for c in self.fake.global_commands],
                "guild_commands": {str(g): [c["name"] for c in cmds] for g, cmds in self.fake.guild_commands.items()},
                "guilds": len(self.fake.guilds),
                "users": len(self.fake.users),
                "interactions": len(self.fake.interactions),
                "messages": len(self.fake.messages),
                "requests": len(self.fake.requests),
                "clock": {"monotonic": time.monotonic(), "wall": time.time()},
            }
        )

    async def stats(self, request: web.Request) -> web.Response:
        """REST counts; ``?since_wall=T`` counts only requests that arrived after wall-clock time T."""
        since = float(request.query["since_wall"]) - _wall_offset() if "since_wall" in request.query else None
        records = [r for r in self.fake.requests if since is None or r.at >= since]
        interaction_of = {m.id: m.interaction_id for m in self.fake.messages.values() if m.interaction_id}
        per_interaction: dict[str, Counter[str]] = {}
        for r in records:
            iid = r.interaction_id or (interaction_of.get(r.message_id) if r.message_id else None)
            if iid is not None:
                counts = per_interaction.setdefault(str(iid), Counter())
                counts["requests"] += 1
                counts["429"] += r.status == 429
        limited = [r for r in records if r.status == 429]
        return json_response(
            {
                "requests": len(records),
                "by_route": dict(Counter(f"{r.method} {r.route or r.path}" for r in records).most_common()),
                "by_status": dict(Counter(str(r.status) for r in records).most_common()),
                "rate_limited": len(limited),
                "rate_limited_injected": sum(r.fault is not None for r in limited),
                "rate_limited_by_route": dict(Counter(f"{r.method} {r.route or r.path}" for r in limited)),
                "per_interaction": {iid: dict(c) for iid, c in per_interaction.items()},
                "unhandled": len(self.fake.unhandled),
                "internal_errors": [repr(e) for e in self.fake.internal_errors],
                "spec_violations": [str(v) for v in self.fake.spec_violations],
                "faults": [
                    {
                        "method": f.method,
                        "path": f.path_regex and f.path_regex.pattern,
                        "status": f.status,
                        "hits": f.hits,
                    }
                    for f in self.fake.faults
                ],
            }
        )

    async def inject(self, request: web.Request) -> web.Response:
        """{"method": "PATCH" | "*", "path": regex after /api/v10, "status": 429 (null: only delay),
        "retry_after": 1.0, "global": false, "times": 1 (null: forever), "delay": 0.0}"""
        body = await request.json()
        try:
            method, path = str(body.get("method", "*")).upper(), str(body["path"])
            status, times = body.get("status", 429), body.get("times", 1)
            if status == 429:
                retry_after = float(body.get("retry_after", 1.0))
                self.fake.inject_rate_limit(method, path, retry_after, is_global=bool(body.get("global")), times=times)
            else:
                self.fake.inject(method, path, status, times=times, delay=float(body.get("delay", 0.0)))
        except (LookupError, ValueError, TypeError) as exc:
            return json_response({"error": f"{type(exc).__name__}: {exc}"}, 400)
        return json_response({"ok": True, "faults": len(self.fake.faults)})

    async def clear_faults(self, request: web.Request) -> web.Response:
        self.fake.clear_faults()
        return json_response({"ok": True})


def _wall_offset() -> float:
    """Add this to a time.monotonic() of this process to get the matching time.time()."""
    return time.time() - time.monotonic()


def _flat_options(options: list[JSON] | None) -> dict[str, Any]:
    """{name: value} of a command's options, subcommands flattened."""
    out: dict[str, Any] = {}
    for opt in options or []:
        if "options" in opt:
            out.update(_flat_options(opt["options"]))
        elif "value" in opt:
            out[opt["name"]] = opt["value"]
    return out


def _interaction_summary(handle: InteractionHandle, to_wall: float) -> JSON:
    original = handle.original_message()
    data = handle.payload.get("data") or {}
    response = handle.response
    return {
        "id": str(handle.id),
        "type": handle.type,
        "name": data.get("name"),
        "options": _flat_options(data.get("options")),
        "guild_id": str(handle.guild_id) if handle.guild_id else None,
        "channel_id": str(handle.channel_id),
        "user_id": str(handle.user_id),
        "sent_at": handle.sent_at,
        "sent_wall": handle.sent_at + to_wall,
        "response_type": handle.response_type,
        "response_at": response.at if response else None,
        "response_wall": response.at + to_wall if response else None,
        "response_delay": handle.response_delay,
        "original_message_id": str(original.id) if original else None,
        "followup_ids": [str(m) for m in handle.followup_ids],
    }


def _edit_summary(edit: MessageEdit, to_wall: float) -> JSON:
    return {
        "at": edit.at,
        "wall": edit.at + to_wall,
        "route": edit.route,
        "content": edit.content,
        "text": edit.text,  # what it showed after the edit, cards included
        "embeds": len(edit.embeds),
        "attachments": len(edit.attachments),
        "new_attachments": [{"filename": a.filename, "size": a.size} for a in edit.new_attachments],
    }


def build_world(fake: FakeDiscord, *, guilds: int, channels: int, users: int, guilds_per_user: int = 1) -> JSON:
    """``guilds`` guilds with ``channels`` text channels each and ``users`` users; user i is a member of
    guilds i, i+1, ... (mod ``guilds``), ``guilds_per_user`` of them. Returns the ids."""
    if guilds < 1 or channels < 1 or users < 0 or not 1 <= guilds_per_user <= guilds:
        raise ValueError("need guilds >= 1, channels >= 1, users >= 0 and 1 <= guilds_per_user <= guilds")
    start = len(fake.guilds)
    made = [fake.add_guild(f"Guild {start + g + 1}") for g in range(guilds)]
    chans = {g.id: [fake.add_channel(g, f"channel-{c + 1}").id for c in range(channels)] for g in made}
    out_users = []
    for i in range(users):
        user = fake.add_user(f"user{len(fake.users) + 1}")
        joined = [made[(i + k) % guilds] for k in range(guilds_per_user)]
        for guild in joined:
            fake.add_member(guild, user)
        out_users.append({"id": str(user.id), "guild_ids": [str(g.id) for g in joined]})
    return {
        "guilds": [{"id": str(g.id), "channel_ids": [str(c) for c in chans[g.id]]} for g in made],
        "users": out_users,
    }


async def _serve(args: argparse.Namespace) -> None:
    from fakes.discord import FakeDiscord  # here: this module is imported by that one

    fake = FakeDiscord(host=args.host, port=args.port, shard_count=args.shards, token=args.token)
    fake.check_bodies = not args.no_body_checks
    guild = fake.add_guild("Fake Guild")
    channel = fake.add_channel(guild, "general")
    alice = fake.add_user("alice")
    fake.add_member(guild, alice, permissions=["manage_guild", "manage_messages"])
    fake.default_ids = {"guild_id": guild.id, "channel_id": channel.id, "user_id": alice.id}
    if args.guilds or args.users:
        build_world(fake, guilds=max(args.guilds, 1), channels=args.channels, users=args.users)
    await fake.start()
    print("Fake Discord is running (Ctrl-C to stop)")
    print(f"  REST API     {fake.api_base_url}   (DISCORD_API_BASE_URL)")
    print(f"  Gateway      {fake.gateway_url}")
    print(f"  Application  {fake.application_id}, bot user {fake.bot.id}")
    print(f"  Guild        {guild.id} {guild.name!r}, channel {channel.id} #general, user {alice.id} alice")
    print(f'  Control      POST {fake.base_url}/_fake/slash  {{"name": "imagine", "options": {{...}}}}')
    print(f"               GET  {fake.base_url}/_fake/messages | /_fake/requests | /_fake/interactions[/ID]")
    print(f"               GET  {fake.base_url}/_fake/state | /_fake/stats   POST /_fake/world | /_fake/inject")
    print(f"  World        {len(fake.guilds)} guild(s), {len(fake.channels)} channel(s), {len(fake.users)} user(s)")
    try:
        await asyncio.Event().wait()
    finally:
        await fake.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fakes.discord", description="Run the fake Discord server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8788)
    parser.add_argument("--shards", type=int, default=1, help="shard count GET /gateway/bot recommends")
    parser.add_argument("--token", default=None, help="require this bot token (default: accept any)")
    parser.add_argument("--guilds", type=int, default=0, help="also create this many guilds (see /_fake/world)")
    parser.add_argument("--channels", type=int, default=1, help="channels in each of those guilds")
    parser.add_argument("--users", type=int, default=0, help="also create this many users, each in one guild")
    parser.add_argument(
        "--no-body-checks",
        action="store_true",
        help="accept request bodies unchecked against Discord's OpenAPI description (for load benchmarks)",
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
