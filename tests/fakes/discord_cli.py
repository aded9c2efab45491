"""Standalone use of the fake Discord: a tiny JSON control API under /_fake/ and ``main()`` for
``python -m tests.fakes.discord --port 8788``. The bot under test is pointed at the printed URLs."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from aiohttp import web

from tests.fakes.discord_rest import json_response

if TYPE_CHECKING:
    from tests.fakes.discord import FakeDiscord


def register_control(app: web.Application, fake: FakeDiscord) -> None:
    _Control(fake)._routes(app)


class _Control:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake

    def _routes(self, app: web.Application) -> None:
        app.router.add_post("/_fake/slash", self.slash)
        app.router.add_get("/_fake/messages", self.messages)
        app.router.add_get("/_fake/requests", self.requests)
        app.router.add_get("/_fake/interactions/{interaction_id}", self.interaction)

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

    async def messages(self, request: web.Request) -> web.Response:
        out = []
        for m in sorted(self.fake.messages.values(), key=lambda m: m.id):
            out.append(
                {
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
                }
            )
        return json_response(out)

    async def requests(self, request: web.Request) -> web.Response:
        return json_response([r.summary() for r in self.fake.requests])

    async def interaction(self, request: web.Request) -> web.Response:
        handle = self.fake.interactions.get(int(request.match_info["interaction_id"]))
        if handle is None:
            return json_response({"error": "unknown interaction"}, 404)
        original = handle.original_message()
        return json_response(
            {
                "id": str(handle.id),
                "response_type": handle.response_type,
                "response_delay": handle.response_delay,
                "original_message_id": str(original.id) if original else None,
                "followup_ids": [str(m) for m in handle.followup_ids],
            }
        )


async def _serve(args: argparse.Namespace) -> None:
    from tests.fakes.discord import FakeDiscord  # here: this module is imported by that one

    fake = FakeDiscord(host=args.host, port=args.port, shard_count=args.shards, token=args.token)
    guild = fake.add_guild("Fake Guild")
    channel = fake.add_channel(guild, "general")
    alice = fake.add_user("alice")
    fake.add_member(guild, alice, permissions=["manage_guild", "manage_messages"])
    fake.default_ids = {"guild_id": guild.id, "channel_id": channel.id, "user_id": alice.id}
    await fake.start()
    print("Fake Discord is running (Ctrl-C to stop)")
    print(f"  REST API     {fake.api_base_url}   (DISCORD_API_BASE_URL)")
    print(f"  Gateway      {fake.gateway_url}")
    print(f"  Application  {fake.application_id}, bot user {fake.bot.id}")
    print(f"  Guild        {guild.id} {guild.name!r}, channel {channel.id} #general, user {alice.id} alice")
    print(f'  Control      POST {fake.base_url}/_fake/slash  {{"name": "imagine", "options": {{...}}}}')
    print(f"               GET  {fake.base_url}/_fake/messages | /_fake/requests | /_fake/interactions/ID")
    try:
        await asyncio.Event().wait()
    finally:
        await fake.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.discord", description="Run the fake Discord server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8788)
    parser.add_argument("--shards", type=int, default=1, help="shard count GET /gateway/bot recommends")
    parser.add_argument("--token", default=None, help="require this bot token (default: accept any)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
