"""The fake gateway: HELLO/IDENTIFY/READY/GUILD_CREATE, heartbeats, RESUME with replay, shards.

Dispatching is synchronous: an event gets its sequence number and is queued on the session at once, and a
writer task per connection sends the queue in order. So events keep their order whoever dispatches them,
and events dispatched while the bot is disconnected wait in the session for a RESUME, as on Discord.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import time
import zlib
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from fakes.discord_models import (
    INTENT_DIRECT_MESSAGE_REACTIONS,
    INTENT_DIRECT_MESSAGES,
    INTENT_GUILD_MEMBERS,
    INTENT_GUILD_MESSAGE_REACTIONS,
    INTENT_GUILD_MESSAGES,
    INTENT_GUILDS,
    INTENT_MESSAGE_CONTENT,
    JSON,
)

if TYPE_CHECKING:
    from fakes.discord import FakeDiscord

OP_DISPATCH = 0
OP_HEARTBEAT = 1
OP_IDENTIFY = 2
OP_RESUME = 6
OP_RECONNECT = 7
OP_REQUEST_MEMBERS = 8
OP_INVALID_SESSION = 9
OP_HELLO = 10
OP_HEARTBEAT_ACK = 11

_GUILD_EVENTS = {
    "GUILD_CREATE",
    "GUILD_UPDATE",
    "GUILD_DELETE",
    "CHANNEL_CREATE",
    "CHANNEL_UPDATE",
    "CHANNEL_DELETE",
    "GUILD_ROLE_CREATE",
    "GUILD_ROLE_UPDATE",
    "GUILD_ROLE_DELETE",
}
_MEMBER_EVENTS = {"GUILD_MEMBER_ADD", "GUILD_MEMBER_UPDATE", "GUILD_MEMBER_REMOVE"}
_MESSAGE_EVENTS = {"MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE", "MESSAGE_DELETE_BULK"}
_REACTION_EVENTS = {
    "MESSAGE_REACTION_ADD",
    "MESSAGE_REACTION_REMOVE",
    "MESSAGE_REACTION_REMOVE_ALL",
    "MESSAGE_REACTION_REMOVE_EMOJI",
}


def intent_allows(intents: int, event: str, data: JSON) -> bool:
    """Whether Discord would send ``event`` to a session identified with ``intents``."""
    in_guild = data.get("guild_id") is not None
    if event in _GUILD_EVENTS:
        return bool(intents & INTENT_GUILDS)
    if event in _MEMBER_EVENTS:
        return bool(intents & INTENT_GUILD_MEMBERS)
    if event in _MESSAGE_EVENTS:
        return bool(intents & (INTENT_GUILD_MESSAGES if in_guild else INTENT_DIRECT_MESSAGES))
    if event in _REACTION_EVENTS:
        return bool(intents & (INTENT_GUILD_MESSAGE_REACTIONS if in_guild else INTENT_DIRECT_MESSAGE_REACTIONS))
    return True


@dataclass
class GatewayConnection:
    """One websocket connection (a session may span several after resumes)."""

    id: int
    ws: web.WebSocketResponse
    path: str
    query: dict[str, str]
    compress: bool
    opened_at: float = field(default_factory=time.monotonic)
    closed_at: float | None = None
    close_code: int | None = None
    shard_id: int | None = None
    session_id: str | None = None
    received: list[tuple[float, int, Any]] = field(default_factory=list)  # (time, op, d)
    queue: asyncio.Queue[JSON | None] = field(default_factory=asyncio.Queue)
    writer: asyncio.Task[None] | None = None
    _zlib: Any = None

    def send(self, frame: JSON) -> None:
        self.queue.put_nowait(frame)

    async def write_loop(self) -> None:
        if self.compress:
            self._zlib = zlib.compressobj()
        while (frame := await self.queue.get()) is not None:
            text = json.dumps(frame)
            try:
                if self._zlib is not None:
                    # zlib-stream: one shared context, every message ends with a sync flush (00 00 ff ff)
                    await self.ws.send_bytes(self._zlib.compress(text.encode()) + self._zlib.flush(zlib.Z_SYNC_FLUSH))
                else:
                    await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return  # the client went away; its session keeps the frames for a RESUME


@dataclass
class GatewaySession:
    session_id: str
    shard_id: int
    shard_count: int
    intents: int
    seq: int = 0
    frames: list[JSON] = field(default_factory=list)
    conn: GatewayConnection | None = None
    resumable: bool = True
    identified_at: float = field(default_factory=time.monotonic)
    resumes: int = 0

    @property
    def live(self) -> bool:
        return self.conn is not None


@dataclass
class DispatchedEvent:
    at: float
    shard_id: int
    session_id: str
    seq: int
    event: str
    data: JSON


class Gateway:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.connections: list[GatewayConnection] = []
        self.sessions: dict[str, GatewaySession] = {}
        self.active: dict[int, GatewaySession] = {}  # shard id -> current session
        self.dispatched: list[DispatchedEvent] = []
        self.refusals = 0  # the next connections answered 503 before the upgrade (see FakeDiscord.refuse_gateway)
        self.refused = 0  # how many were
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- routing -------------------------------------------------------------------------------

    def session_for_guild(self, guild_id: int) -> GatewaySession | None:
        for session in self.active.values():
            if (guild_id >> 22) % session.shard_count == session.shard_id:
                return session
        return None

    def session_for(self, guild_id: int | None) -> GatewaySession | None:
        # DMs go to shard 0, as on Discord
        return self.active.get(0) if guild_id is None else self.session_for_guild(guild_id)

    def guild_ids_for(self, session: GatewaySession) -> list[int]:
        return [
            g
            for g in self.fake.guilds
            if (g >> 22) % session.shard_count == session.shard_id and self.fake.bot_in_guild(g)
        ]

    def dispatch(self, event: str, data: JSON, *, guild_id: int | None, required: bool = False) -> bool:
        """Send ``event`` to the session owning ``guild_id`` (filtered by its intents).

        Returns whether it was sent (or buffered for a resume). With ``required`` a missing session raises,
        so a test driving a user action while the bot is not connected fails loudly instead of hanging.
        """
        if event != "INTERACTION_CREATE" and not self._bot_sees(guild_id, data):
            return False  # a user install gets interactions only: no events from where the bot is not
        session = self.session_for(guild_id)
        if session is None:
            if required:
                shard = "0 (DMs)" if guild_id is None else f"of guild {guild_id}"
                raise RuntimeError(f"no gateway session for shard {shard}: is the bot connected?")
            return False
        if not intent_allows(session.intents, event, data):
            return False
        if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE"):
            data = self._visible_message(session, data)
        self._dispatch_to(session, event, data)
        return True

    def _bot_sees(self, guild_id: int | None, data: JSON) -> bool:
        if guild_id is not None and not self.fake.bot_in_guild(guild_id):
            return False  # a server that never added the bot
        channel_id = data.get("channel_id") or (data.get("id") if "recipients" in data else None)
        return channel_id is None or int(channel_id) not in self.fake.private_channels

    def _visible_message(self, session: GatewaySession, data: JSON) -> JSON:
        """Without the message content intent Discord blanks content of other users' guild messages."""
        if session.intents & INTENT_MESSAGE_CONTENT or data.get("guild_id") is None:
            return data
        me = str(self.fake.bot.id)
        if data.get("author", {}).get("id") == me or any(u.get("id") == me for u in data.get("mentions", [])):
            return data
        return {**data, "content": "", "embeds": [], "attachments": [], "components": []}

    def _dispatch_to(self, session: GatewaySession, event: str, data: JSON) -> None:
        session.seq += 1
        frame = {"op": OP_DISPATCH, "t": event, "s": session.seq, "d": data}
        session.frames.append(frame)
        if session.conn is not None:
            session.conn.send(frame)
        self.dispatched.append(
            DispatchedEvent(time.monotonic(), session.shard_id, session.session_id, session.seq, event, data)
        )
        self.fake._changed()

    # ---- websocket handler ---------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.fake.gateway_down:
            return web.Response(status=503, text="gateway unavailable")
        if self.refusals:
            self.refusals -= 1
            self.refused += 1
            self.fake._changed()
            return web.Response(status=503, text="503: Service Unavailable")
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        query = dict(request.query)
        conn = GatewayConnection(
            id=next(self._ids),
            ws=ws,
            path=request.path,
            query=query,
            compress=self.fake.compress_gateway and query.get("compress") == "zlib-stream",
        )
        conn.writer = asyncio.create_task(conn.write_loop())
        self.connections.append(conn)
        conn.send({"op": OP_HELLO, "d": {"heartbeat_interval": self.fake.heartbeat_interval_ms}, "s": None, "t": None})
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                payload = json.loads(msg.data)
                op, d = payload.get("op"), payload.get("d")
                conn.received.append((time.monotonic(), op, d))
                if op == OP_HEARTBEAT:
                    conn.send({"op": OP_HEARTBEAT_ACK, "d": None, "s": None, "t": None})
                elif op == OP_IDENTIFY:
                    await self._identify(conn, d)
                elif op == OP_RESUME:
                    self._resume(conn, d)
                elif op == OP_REQUEST_MEMBERS:
                    self._request_members(conn, d)
                self.fake._changed()
        finally:
            conn.closed_at = time.monotonic()
            conn.close_code = ws.close_code
            session = self.sessions.get(conn.session_id or "")
            if session is not None and session.conn is conn:
                session.conn = None
            conn.queue.put_nowait(None)
            if conn.writer is not None:
                conn.writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await conn.writer
            self.fake._changed()
        return ws

    async def _identify(self, conn: GatewayConnection, d: JSON) -> None:
        token = self.fake.token
        if token is not None and d.get("token") != token:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        shard_id, shard_count = d.get("shard") or [0, 1]
        if not 0 <= shard_id < shard_count:
            await conn.ws.close(code=4010, message=b"Invalid shard.")
            return
        session = GatewaySession(
            session_id=secrets.token_hex(16),
            shard_id=shard_id,
            shard_count=shard_count,
            intents=int(d.get("intents", 0)),
        )
        old = self.active.get(shard_id)
        if old is not None:
            old.resumable = False
        self.sessions[session.session_id] = session
        self.active[shard_id] = session
        conn.shard_id, conn.session_id = shard_id, session.session_id
        session.conn = conn
        guild_ids = self.guild_ids_for(session)
        ready = {
            "v": 10,
            "user": self.fake.bot.payload() | {"verified": True, "mfa_enabled": False},
            "guilds": [{"id": str(g), "unavailable": True} for g in guild_ids],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.fake.gateway_url,
            "shard": [shard_id, shard_count],
            "application": {"id": str(self.fake.application_id), "flags": self.fake.application_flags},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "geo_ordered_rtc_regions": [],
            "guild_join_requests": [],
            "user_settings": {},
            "_trace": ["fake-discord"],
        }
        self._dispatch_to(session, "READY", ready)
        if self.fake.guild_create_delay > 0:
            self._spawn(self._send_guilds_later(session, guild_ids))
        else:
            for gid in guild_ids:
                self._send_guild_create(session, gid)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)  # keep a reference until done
        task.add_done_callback(self._tasks.discard)

    async def _send_guilds_later(self, session: GatewaySession, guild_ids: list[int]) -> None:
        for gid in guild_ids:
            await asyncio.sleep(self.fake.guild_create_delay)
            self._send_guild_create(session, gid)

    def _send_guild_create(self, session: GatewaySession, guild_id: int) -> None:
        guild = self.fake.guilds.get(guild_id)
        if guild is None or not session.intents & INTENT_GUILDS:
            return
        payload = guild.payload(bot_user_id=self.fake.bot.id, all_members=bool(session.intents & INTENT_GUILD_MEMBERS))
        self._dispatch_to(session, "GUILD_CREATE", payload)

    def _resume(self, conn: GatewayConnection, d: JSON) -> None:
        session = self.sessions.get(d.get("session_id") or "")
        token_ok = self.fake.token is None or d.get("token") == self.fake.token
        if session is None or not session.resumable or not token_ok or self.active.get(session.shard_id) is not session:
            # the client closes and identifies again after this
            conn.send({"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        if session.conn is not None and session.conn is not conn:
            self._spawn(session.conn.ws.close(code=4000))  # a session has one live socket at a time
        conn.shard_id, conn.session_id = session.shard_id, session.session_id
        last = int(d.get("seq") or 0)
        # replay what the client missed, then RESUMED; nothing can interleave since this is synchronous
        for frame in session.frames:
            if frame["s"] > last:
                conn.send(frame)
        session.conn = conn
        session.resumes += 1
        self._dispatch_to(session, "RESUMED", {"_trace": ["fake-discord"]})

    def _request_members(self, conn: GatewayConnection, d: JSON) -> None:
        session = self.sessions.get(conn.session_id or "")
        guild = self.fake.guilds.get(int(d.get("guild_id", 0)))
        if session is None or guild is None:
            return
        members = list(guild.members.values())
        wanted = {int(u) for u in d.get("user_ids") or []}
        if wanted:
            members = [m for m in members if m.id in wanted]
        elif d.get("query"):
            members = [m for m in members if m.user.name.lower().startswith(str(d["query"]).lower())]
        limit = int(d.get("limit") or 0)
        if limit:
            members = members[:limit]
        chunk: JSON = {
            "guild_id": str(guild.id),
            "members": [m.payload() for m in members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [str(u) for u in wanted - {m.id for m in members}],
        }
        if d.get("nonce"):
            chunk["nonce"] = d["nonce"]
        self._dispatch_to(session, "GUILD_MEMBERS_CHUNK", chunk)

    # ---- control -------------------------------------------------------------------------------

    async def drop(self, *, resumable: bool, shard_id: int | None, code: int | None, reconnect_op: bool) -> int:
        """Close live connections so the client reconnects. Returns how many were dropped."""
        dropped = 0
        for session in list(self.active.values()):
            if shard_id is not None and session.shard_id != shard_id:
                continue
            conn = session.conn
            if conn is None:
                continue
            session.resumable = resumable
            dropped += 1
            if reconnect_op:
                # the client closes the socket itself and resumes
                conn.send({"op": OP_RECONNECT, "d": None, "s": None, "t": None})
                continue
            session.conn = None  # events from now on wait in the session for the resume
            # 4000 "unknown error" is resumable; 4009 "session timed out" asks for a fresh session
            await conn.ws.close(code=code or (4000 if resumable else 4009))
        return dropped

    async def close_all(self) -> None:
        for conn in self.connections:
            if not conn.ws.closed:
                await conn.ws.close(code=1001)
        for task in list(self._tasks):
            task.cancel()
