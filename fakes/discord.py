"""A fake Discord (REST + gateway + CDN) on loopback, for running the real discord.py client in tests.

Usage (see tests/test_fake_discord.py)::

    fake = FakeDiscord()
    guild = fake.add_guild("g")
    channel = fake.add_channel(guild, "general")
    alice = fake.add_user("alice")
    fake.add_member(guild, alice, permissions=["manage_guild"])
    await fake.start()
    discord.http.Route.BASE = fake.api_base_url
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    ...  # start the bot, then drive users:
    handle = await fake.slash_command(guild, channel, alice, "imagine", {"prompt": "a cat"})
    await handle.wait_response()

Run standalone with ``python -m fakes.discord --port 8788``.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, urlsplit

from aiohttp import web

from fakes.common import Changes, Fault, RecordedRequest, UploadedFile
from fakes.discord_actions import InteractionActions
from fakes.discord_cli import main, register_control
from fakes.discord_entitlements import Entitlements, FakeEntitlement
from fakes.discord_gateway import DispatchedEvent, Gateway, GatewayConnection, GatewaySession
from fakes.discord_interactions import (
    InteractionHandle,
    InteractionResponse,
    find_command,
)
from fakes.discord_messages import MessageStore
from fakes.discord_models import (
    API_PREFIX,
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    DEFAULT_UPLOAD_LIMIT,
    FLAG_SUPPRESS_EMBEDS,
    JSON,
    DiscordHTTPError,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeRole,
    FakeUser,
    IdLike,
    MessageEdit,
    Overwrite,
    PermissionsLike,
    SnowflakeGenerator,
    StoredAttachment,
    StoredMessage,
    as_id,
    emoji_key,
    make_fault,
    permissions_value,
    safe_filename,
)
from fakes.discord_openapi import Violation
from fakes.discord_rest import RestApi

__all__ = [
    "DiscordHTTPError",
    "DispatchedEvent",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeMember",
    "FakeRole",
    "FakeUser",
    "Fault",
    "GatewayConnection",
    "GatewaySession",
    "InteractionHandle",
    "InteractionResponse",
    "MessageEdit",
    "RecordedRequest",
    "StoredAttachment",
    "StoredMessage",
    "Violation",
]

T = TypeVar("T")

DEFAULT_APPLICATION_ID = 1_200_000_000_000_000_001
DEFAULT_BOT_USER_ID = 1_200_000_000_000_000_002
DEFAULT_OWNER_ID = 1_200_000_000_000_000_003
# GATEWAY_MESSAGE_CONTENT_LIMITED: the app may ask for the message content intent
DEFAULT_APPLICATION_FLAGS = 1 << 19
CDN_LINK_SECONDS = 86_400  # how long a CDN link lasts (Discord: about a day)


class FakeDiscord(InteractionActions):
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        application_id: int = DEFAULT_APPLICATION_ID,
        bot_user_id: int = DEFAULT_BOT_USER_ID,
        bot_name: str = "FakeBot",
        token: str | None = None,
        shard_count: int = 1,
        heartbeat_interval_ms: int = 41_250,
        compress_gateway: bool = False,
        guild_create_delay: float = 0.0,
        interaction_deadline: float | None = 3.0,
        token_ttl: float = 15 * 60,
        rate_limit: tuple[int, float] | None = (50, 1.0),
        upload_limit: int = DEFAULT_UPLOAD_LIMIT,
        application_flags: int = DEFAULT_APPLICATION_FLAGS,
        control_api: bool = True,
    ) -> None:
        """
        token: when set, REST Authorization and gateway IDENTIFY must carry it (else 401 / close 4004).
        shard_count: what GET /gateway/bot recommends (AutoShardedClient uses it).
        compress_gateway: answer ``compress=zlib-stream`` with real zlib frames instead of plain text.
        interaction_deadline: seconds the bot has for the first callback (Discord: 3), None for no limit.
        rate_limit: (limit, window seconds) reported in X-RateLimit-* headers, None to send no headers.
        """
        self.host = host
        self._port = port
        self.application_id = application_id
        self.application_flags = application_flags
        self.token = token
        self.shard_count = shard_count
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.compress_gateway = compress_gateway
        self.guild_create_delay = guild_create_delay
        self.interaction_deadline = interaction_deadline
        self.token_ttl = token_ttl
        self.rate_limit = rate_limit
        self.upload_limit = upload_limit
        self.control_api = control_api

        self._snowflakes = SnowflakeGenerator()
        self.bot = FakeUser(bot_user_id, bot_name, bot=True)
        self.owner = FakeUser(DEFAULT_OWNER_ID, "app-owner")
        self.users: dict[int, FakeUser] = {self.bot.id: self.bot, self.owner.id: self.owner}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.messages: dict[int, StoredMessage] = {}
        self.attachments: dict[int, StoredAttachment] = {}  # everything the CDN serves
        self.uploads: dict[int, StoredAttachment] = {}  # user uploads for attachment options
        self.requests: list[RecordedRequest] = []
        self.unhandled: list[RecordedRequest] = []  # requests to routes the fake does not know
        self.cdn_requests: list[str] = []
        # Seconds added to the clock the CDN signs links with and checks their expiry against: a test sets it
        # to -2 days to post an image "two days ago", then back to 0, and its links have expired.
        self.cdn_time_shift = 0.0
        self.internal_errors: list[Exception] = []  # bugs in the fake itself; tests should assert it stays empty
        # request bodies Discord's OpenAPI description forbids (answered 400 / 50035); tests assert it stays empty
        self.spec_violations: list[Violation] = []
        # False only where the fake stands in as a load generator (bench/): a card body takes ~11 ms to check, which
        # in a burst saturates the fake's one core and makes the bot look slow to answer.
        self.check_bodies = True
        self.faults: list[Fault] = []
        # A gateway outage: while True, new gateway connections are refused (HTTP 503 to the WebSocket upgrade)
        # and the live ones carry on; with drop_gateway(shard_id=...), that shard stays down until it is False.
        self.gateway_down = False
        self.interactions: dict[int, InteractionHandle] = {}
        self._by_token: dict[str, InteractionHandle] = {}
        self.global_commands: list[JSON] = []
        self.guild_commands: dict[int, list[JSON]] = {}
        self.modals: dict[str, InteractionHandle] = {}  # open modals by custom_id -> the interaction that opened it
        self.app_emojis: dict[int, JSON] = {}  # the application's own emojis, by id (their images as data URIs)
        self._dm_channels: dict[int, FakeChannel] = {}
        # group DMs and DMs between users: only a user-installed app reaches them, through interactions
        self.private_channels: set[int] = set()
        self._gateway = Gateway(self)
        self._msgs = MessageStore(self)
        self._rest = RestApi(self)
        self.entitlements = Entitlements(self)  # Premium Apps: purchases, refunds, the list and consume routes
        self._runner: web.AppRunner | None = None
        self.changes = Changes("fake Discord")  # what wait_for() waits on
        self.default_ids: dict[str, int] = {}  # used by the control API when a request omits ids
        self._link_generation = 0  # bumped by renew_attachment_links(): older signed links stop working

    # ---- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        # client_max_size above Discord's upload limit so the fake, not aiohttp, answers oversized uploads
        app = web.Application(middlewares=[self._rest.middleware], client_max_size=256 * 1024 * 1024)
        self._rest.register(app)
        self.entitlements.register(app, API_PREFIX)
        app.router.add_get("/gateway", self._gateway.handle)
        if self.control_api:
            register_control(app, self)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Close the bot first (gotcha 7): a connected client would keep reconnecting."""
        await self._gateway.close_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self._port}"

    @property
    def api_base_url(self) -> str:
        return self.base_url + API_PREFIX

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self._port}/gateway"

    def cdn_url(self, path: str) -> str:
        # real attachment URLs carry signed expiry parameters (ex: expiry, is: issued, hex epoch seconds); the
        # CDN refuses a link past its `ex`, or one whose signature was renewed since (see RestApi.cdn)
        now = int(self.cdn_now())
        sig = hashlib.sha256(f"{path}{now}:{self._link_generation}".encode()).hexdigest()
        return f"{self.base_url}{path}?ex={now + CDN_LINK_SECONDS:x}&is={now:x}&hm={sig}&"

    def cdn_now(self) -> float:
        return time.time() + self.cdn_time_shift

    def renew_attachment_links(self) -> None:
        """A day passes: every attachment link Discord handed out expires (its CDN answers 404 for it), and
        messages are served from now on with newly signed links, as Discord does."""
        self._link_generation += 1
        for att in self.attachments.values():
            att.url = att.proxy_url = self.cdn_url(urlsplit(att.url).path)

    def link_is_current(self, att: StoredAttachment, query: Mapping[str, str]) -> bool:
        """Whether a CDN request's signature is the attachment's current one (unsigned requests pass)."""
        signature = query.get("hm")
        return signature is None or parse_qs(urlsplit(att.url).query).get("hm") == [signature]

    # ---- world building ------------------------------------------------------------------------

    def add_user(
        self, name: str, *, bot: bool = False, user_id: int | None = None, global_name: str | None = None
    ) -> FakeUser:
        user = FakeUser(user_id or self._snowflakes.next(), name, bot=bot, global_name=global_name)
        self.users[user.id] = user
        return user

    def add_guild(
        self,
        name: str = "Fake Guild",
        *,
        guild_id: int | None = None,
        shard_id: int | None = None,
        owner_id: IdLike | None = None,
        bot_permissions: PermissionsLike = DEFAULT_BOT_PERMISSIONS,
        everyone_permissions: PermissionsLike = DEFAULT_EVERYONE_PERMISSIONS,
        locale: str = "en-US",
        with_bot: bool = True,
        external_apps: bool = True,
    ) -> FakeGuild:
        """A guild with @everyone, a bot role and the bot as member. ``shard_id`` picks an id on that shard.

        ``with_bot=False``: a server that never added the bot; the app is used there through a user install
        only: no GUILD_CREATE or other events, channel endpoints answer 403 Missing Access.
        ``external_apps=False``: the server turned off "Use External Apps": a user install's replies are forced
        ephemeral there."""
        if guild_id is None:
            if shard_id is not None:
                guild_id = self._snowflakes.next_for_shard(shard_id, self.shard_count)
            else:
                guild_id = self._snowflakes.next()
        owner = self.users[as_id(owner_id)] if owner_id is not None else self.owner
        guild = FakeGuild(guild_id, name, owner.id, locale=locale, external_apps=external_apps)
        guild.roles[guild_id] = FakeRole(guild_id, guild_id, "@everyone", permissions_value(everyone_permissions))
        if with_bot:
            bot_role = FakeRole(self._snowflakes.next(), guild_id, self.bot.name, permissions_value(bot_permissions), 1)
            guild.roles[bot_role.id] = bot_role
            guild.members[self.bot.id] = FakeMember(guild_id, self.bot, [bot_role.id])
        guild.members[owner.id] = FakeMember(guild_id, owner, [])
        self.guilds[guild_id] = guild
        session = self._gateway.session_for_guild(guild_id)
        if session is not None and with_bot:
            self._gateway._send_guild_create(session, guild_id)  # the bot was added to a new guild
        return guild

    def add_channel(
        self, guild_id: IdLike, name: str = "general", *, topic: str | None = None, nsfw: bool = False
    ) -> FakeChannel:
        guild = self.guilds[as_id(guild_id)]
        channel = FakeChannel(
            self._snowflakes.next(), guild.id, name, position=len(guild.channels), topic=topic, nsfw=nsfw
        )
        guild.channels[channel.id] = channel
        self.channels[channel.id] = channel
        self._gateway.dispatch("CHANNEL_CREATE", channel.payload(), guild_id=guild.id)
        return channel

    def add_role(self, guild_id: IdLike, name: str, permissions: PermissionsLike = None) -> FakeRole:
        guild = self.guilds[as_id(guild_id)]
        role = FakeRole(self._snowflakes.next(), guild.id, name, permissions_value(permissions), len(guild.roles))
        guild.roles[role.id] = role
        self._gateway.dispatch(
            "GUILD_ROLE_CREATE", {"guild_id": str(guild.id), "role": role.payload()}, guild_id=guild.id
        )
        return role

    def add_member(
        self,
        guild_id: IdLike,
        user_id: IdLike,
        *,
        permissions: PermissionsLike = None,
        roles: Iterable[IdLike] = (),
        nick: str | None = None,
    ) -> FakeMember:
        """Add a user to a guild. ``permissions`` (int, names or discord.Permissions) become a role of their own."""
        guild = self.guilds[as_id(guild_id)]
        user = self.users[as_id(user_id)]
        role_ids = [as_id(r) for r in roles]
        if permissions is not None:
            role_ids.append(self.add_role(guild, f"{user.name}-permissions", permissions).id)
        member = FakeMember(guild.id, user, role_ids, nick=nick)
        guild.members[user.id] = member
        self._gateway.dispatch("GUILD_MEMBER_ADD", member.payload() | {"guild_id": str(guild.id)}, guild_id=guild.id)
        return member

    def set_channel_permissions(
        self, channel_id: IdLike, target_id: IdLike, *, allow: PermissionsLike = None, deny: PermissionsLike = None
    ) -> None:
        """A channel overwrite for a user or role (the guild id means @everyone), e.g. deny the bot attach_files."""
        channel = self.channels[as_id(channel_id)]
        assert channel.guild_id is not None, "DM channels have no permission overwrites"
        guild = self.guilds[channel.guild_id]
        target = as_id(target_id)
        kind = 0 if target in guild.roles else 1
        channel.overwrites[target] = Overwrite(target, kind, permissions_value(allow), permissions_value(deny))
        self._gateway.dispatch("CHANNEL_UPDATE", channel.payload(), guild_id=guild.id)

    def bot_permissions(self, channel_id: IdLike) -> int:
        """The bot's permissions in a channel, overwrites applied (what app_permissions carries)."""
        return self._msgs.bot_permissions(self.channels[as_id(channel_id)])

    def dm_channel(self, user_id: IdLike) -> FakeChannel:
        user = self.users[as_id(user_id)]
        channel = self._dm_channels.get(user.id)
        if channel is None:
            channel = FakeChannel(self._snowflakes.next(), None, "", type=1, recipients=[user])
            self._dm_channels[user.id] = channel
            self.channels[channel.id] = channel
        return channel

    def bot_in_guild(self, guild_id: IdLike) -> bool:
        guild = self.guilds.get(as_id(guild_id))
        return guild is not None and self.bot.id in guild.members

    def private_channel(self, *users: IdLike, group: bool = True, name: str = "") -> FakeChannel:
        """A group DM of ``users`` (or, ``group=False``, a DM between two of them) that the bot is not in:
        a user-installed app is used there through interactions alone; channel endpoints answer Missing Access."""
        members = [self.users[as_id(u)] for u in users]
        channel = FakeChannel(self._snowflakes.next(), None, name, type=3 if group else 1, recipients=members)
        self.channels[channel.id] = channel
        self.private_channels.add(channel.id)
        return channel

    def add_attachment(self, filename: str, data: bytes, content_type: str | None = None) -> JSON:
        """A file a user uploads into an attachment option; pass the returned payload as the option value."""
        att_id = self._snowflakes.next()
        name = safe_filename(filename)
        url = self.cdn_url(f"/ephemeral-attachments/{self.application_id}/{att_id}/{quote(name)}")
        ctype = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        att = StoredAttachment(att_id, name, data, ctype, url, url, ephemeral=True)
        self.uploads[att_id] = att
        self.attachments[att_id] = att
        return att.payload()

    def shard_of(self, guild_id: IdLike, shard_count: int | None = None) -> int:
        return (as_id(guild_id) >> 22) % (shard_count or self.shard_count)

    def application_payload(self) -> JSON:
        return {
            "id": str(self.application_id),
            "name": self.bot.name,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": self.owner.payload(),
            "team": None,
            "verify_key": "0" * 64,
            "flags": self.application_flags,
            "bot": self.bot.payload(),
            "rpc_origins": [],
            "tags": [],
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "approximate_guild_count": len(self.guilds),
        }

    # ---- commands ------------------------------------------------------------------------------

    def commands(self, guild_id: IdLike | None = None) -> list[JSON]:
        """What the bot synced: global commands, or those of one guild."""
        if guild_id is None:
            return list(self.global_commands)
        return list(self.guild_commands.get(as_id(guild_id), []))

    def command(self, name: str, *, guild_id: IdLike | None = None, command_type: int = 1) -> JSON | None:
        found = None
        if guild_id is not None:
            found = find_command(self.guild_commands.get(as_id(guild_id), []), name, command_type)
        return found or find_command(self.global_commands, name, command_type)

    # ---- other user actions --------------------------------------------------------------------

    async def post_message(
        self,
        channel_id: IdLike,
        author_id: IdLike,
        content: str = "",
        *,
        embeds: Sequence[JSON] = (),
        components: Sequence[JSON] = (),
        files: Sequence[tuple[str, bytes]] = (),
        reply_to: IdLike | None = None,
    ) -> StoredMessage:
        """Another user (or bot: add_user(bot=True)) posts a message; dispatches MESSAGE_CREATE."""
        channel = self.channels[as_id(channel_id)]
        author = self.users[as_id(author_id)]
        uploads = [UploadedFile(f"files[{i}]", name, None, data) for i, (name, data) in enumerate(files)]
        body: JSON = {"content": content, "embeds": list(embeds), "components": list(components)}
        if reply_to is not None:
            body["message_reference"] = {"message_id": str(as_id(reply_to))}
        msg = self._msgs.create_message(
            channel, author, body, uploads, upload_limit=self.upload_limit, flags_mask=FLAG_SUPPRESS_EMBEDS
        )
        self._msgs.dispatch_message("MESSAGE_CREATE", msg)
        return msg

    async def add_reaction(
        self, channel_id: IdLike, message_id: IdLike, user_id: IdLike, emoji: str = "🔄", *, burst: bool = False
    ) -> None:
        """A user reacts; dispatches MESSAGE_REACTION_ADD (type 0, or 1 for a super reaction)."""
        msg = self._message_in(channel_id, message_id)
        key, uid = emoji_key(emoji), as_id(user_id)
        users = msg.reactions.setdefault(key, [])
        if uid not in users:
            users.append(uid)
        self._msgs.reaction_event(msg, uid, key, add=True, burst=burst)

    async def remove_reaction(self, channel_id: IdLike, message_id: IdLike, user_id: IdLike, emoji: str = "🔄") -> None:
        msg = self._message_in(channel_id, message_id)
        key, uid = emoji_key(emoji), as_id(user_id)
        if uid in msg.reactions.get(key, []):
            msg.reactions[key].remove(uid)
        self._msgs.reaction_event(msg, uid, key, add=False)

    async def delete_message(self, channel_id: IdLike, message_id: IdLike) -> None:
        """Someone deletes a message: MESSAGE_DELETE, and REST calls on it answer 404 / 10008 from now on."""
        self._msgs.delete_message(self._message_in(channel_id, message_id))

    def _message_in(self, channel_id: IdLike, message_id: IdLike) -> StoredMessage:
        msg = self._live_message(as_id(message_id))
        if msg.channel_id != as_id(channel_id):
            raise LookupError(f"message {msg.id} is not in channel {as_id(channel_id)}")
        return msg

    def buy(self, user: IdLike, sku_id: int, *, guild: IdLike | None = None, announce: bool = True) -> FakeEntitlement:
        """A user buys a consumable SKU: an entitlement, and ENTITLEMENT_CREATE unless `announce` is False."""
        return self.entitlements.buy(user, sku_id, guild=guild, announce=announce)

    def dispatch(self, event: str, data: JSON, *, guild_id: IdLike | None = None) -> bool:
        """Escape hatch: send any gateway event to the shard owning ``guild_id`` (shard 0 if None)."""
        return self._gateway.dispatch(event, data, guild_id=None if guild_id is None else as_id(guild_id))

    # ---- gateway control -----------------------------------------------------------------------

    async def drop_gateway(
        self,
        resumable: bool = True,
        *,
        shard_id: int | None = None,
        code: int | None = None,
        reconnect_op: bool = False,
    ) -> int:
        """Close the bot's gateway socket(s). Resumable: the client RESUMEs and gets missed events replayed;
        otherwise its RESUME gets INVALID_SESSION and it identifies again. ``reconnect_op`` sends op 7 instead.
        Returns the number of sessions dropped; await wait_for_gateway() to know they are back."""
        return await self._gateway.drop(resumable=resumable, shard_id=shard_id, code=code, reconnect_op=reconnect_op)

    def refuse_gateway(self, times: int = 1) -> None:
        """Answer the next ``times`` gateway connections with HTTP 503 instead of the WebSocket upgrade, as a
        gateway out of reach would; the client backs off and tries again. ``gateway_refused`` counts them."""
        self._gateway.refusals += times

    @property
    def gateway_refused(self) -> int:
        return self._gateway.refused

    async def wait_for_gateway(
        self, *, shard_ids: Iterable[int] | None = None, timeout: float = 5.0
    ) -> list[GatewaySession]:
        """Wait until every shard (default: all of the identified shard count) has a live session."""

        def live() -> list[GatewaySession] | None:
            sessions = self._gateway.active
            if not sessions:
                return None
            count = max(s.shard_count for s in sessions.values())
            wanted = list(shard_ids) if shard_ids is not None else list(range(count))
            found = [sessions[s] for s in wanted if s in sessions and sessions[s].live]
            return found if len(found) == len(wanted) else None

        return await self.wait_for(live, timeout=timeout, what="live gateway sessions")

    @property
    def gateway_sessions(self) -> dict[int, GatewaySession]:
        """Current session per shard id."""
        return dict(self._gateway.active)

    @property
    def gateway_connections(self) -> list[GatewayConnection]:
        return list(self._gateway.connections)

    def dispatched_events(self, event: str | None = None) -> list[DispatchedEvent]:
        return [e for e in self._gateway.dispatched if event is None or e.event == event]

    # ---- faults --------------------------------------------------------------------------------

    def inject(
        self,
        method: str,
        path_regex: str,
        status: int | None = 429,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        times: int | None = 1,
        delay: float = 0.0,
        hold: float = 0.0,
        drop: bool = False,
        with_files: bool | None = None,
    ) -> Fault:
        """Make the next ``times`` requests matching ``method`` ("*" for any) and ``path_regex`` (searched in
        the path after /api/v10) fail with ``status`` after ``delay`` seconds. status=None: only delay, and/or
        ``hold`` the answer that long after the request took effect (its RecordedRequest is marked ``held``), or
        ``drop`` the connection without an answer once the request took effect (the client cannot tell it did).
        ``with_files``: only the requests that upload files (True), or only the others (False)."""
        fault = make_fault(
            method, path_regex, status, json=json, headers=headers, times=times, delay=delay, hold=hold, drop=drop,
            with_files=with_files,
        )  # fmt: skip
        self.faults.append(fault)
        return fault

    def inject_rate_limit(
        self, method: str, path_regex: str, retry_after: float = 0.2, *, is_global: bool = False, times: int | None = 1
    ) -> Fault:
        body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": is_global}
        return self.inject(method, path_regex, 429, json=body, times=times)

    def inject_error(
        self,
        method: str,
        path_regex: str,
        status: int,
        code: int = 0,
        message: str | None = None,
        *,
        times: int | None = 1,
    ) -> Fault:
        """E.g. (403, 50013) Missing Permissions, (403, 50001) Missing Access, (500, 0), (404, 10008)."""
        body = None if message is None and code == 0 else {"message": message or "", "code": code}
        return self.inject(method, path_regex, status, json=body, times=times)  # None: Discord's default body

    def inject_delay(self, method: str, path_regex: str, seconds: float, *, times: int | None = 1) -> Fault:
        return self.inject(method, path_regex, None, times=times, delay=seconds)

    def clear_faults(self) -> None:
        self.faults.clear()

    def _take_fault(self, method: str, path: str, *, files: bool = False) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path, files=files):
                fault.hits += 1
                return fault
        return None

    # ---- inspection and waiting ----------------------------------------------------------------

    def requests_matching(self, method: str, path_regex: str) -> list[RecordedRequest]:
        pattern = re.compile(path_regex)
        return [r for r in self.requests if method in ("*", r.method) and pattern.search(r.path)]

    def message(self, message_id: IdLike) -> StoredMessage:
        return self.messages[as_id(message_id)]

    def messages_in(self, channel_id: IdLike, *, include_deleted: bool = False) -> list[StoredMessage]:
        cid = as_id(channel_id)
        found = [m for m in self.messages.values() if m.channel_id == cid and (include_deleted or not m.deleted)]
        return sorted(found, key=lambda m: m.id)

    def edits_of(self, message_id: IdLike) -> list[MessageEdit]:
        return list(self.messages[as_id(message_id)].edits)

    def abort_waits(self, error: BaseException | None) -> None:
        """Make every pending and later wait_for() raise at once (None: stop doing so). Hook it to the bot's
        error handlers so a crash in a command fails the test immediately instead of after a wait's timeout."""
        if self.changes.abort is None or error is None:
            self.changes.abort = error
        self.changes.changed()

    def watch(self, task: asyncio.Task[Any]) -> None:
        """Abort waits when ``task`` (the bot's start()) ends: the bot can no longer answer anything."""

        def done(t: asyncio.Task[Any]) -> None:
            error = None if t.cancelled() else t.exception()
            self.abort_waits(error or RuntimeError(f"task {t.get_name()!r} ended"))

        task.add_done_callback(done)

    def _changed(self) -> None:
        """Wake every wait_for(): state changed."""
        self.changes.changed()

    async def wait_for(self, predicate: Callable[[], T | None], *, timeout: float = 5.0, what: str = "condition") -> T:
        """Re-check ``predicate`` at every change until it returns something true (see `Changes.wait_for`)."""
        return await self.changes.wait_for(predicate, timeout=timeout, what=what)

    async def wait_for_requests(
        self, method: str, path_regex: str, *, count: int = 1, timeout: float = 5.0
    ) -> list[RecordedRequest]:
        """Wait until ``count`` matching requests have been answered."""

        def done() -> list[RecordedRequest] | None:
            found = [r for r in self.requests_matching(method, path_regex) if r.status]
            return found if len(found) >= count else None

        return await self.wait_for(done, timeout=timeout, what=f"{count}x {method} {path_regex}")

    async def wait_for_message(
        self, predicate: Callable[[StoredMessage], bool], *, timeout: float = 5.0
    ) -> StoredMessage:
        def found() -> StoredMessage | None:
            return next((m for m in self.messages.values() if predicate(m)), None)

        return await self.wait_for(found, timeout=timeout, what="a matching message")


if __name__ == "__main__":
    main()
