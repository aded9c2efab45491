"""REST side of the fake Discord: routes, request recording, faults, rate-limit headers, interaction
callbacks and interaction webhooks. Message rules live in discord_messages.py."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from fakes.common import RecordedRequest, UploadedFile
from fakes.discord_interactions import (
    ALLOWED_CALLBACKS,
    AUTOCOMPLETE_RESULT,
    CHANNEL_MESSAGE,
    DEFERRED_CHANNEL_MESSAGE,
    DEFERRED_UPDATE_MESSAGE,
    MODAL,
    UPDATE_MESSAGE,
    InteractionHandle,
    InteractionResponse,
)
from fakes.discord_messages import MessageStore
from fakes.discord_models import (
    API_PREFIX,
    FLAG_COMPONENTS_V2,
    FLAG_EPHEMERAL,
    FLAG_LOADING,
    FLAG_SUPPRESS_EMBEDS,
    FLAG_SUPPRESS_NOTIFICATIONS,
    JSON,
    DiscordHTTPError,
    FakeChannel,
    FakeGuild,
    StoredMessage,
    emoji_key,
    invalid_form,
    missing_access,
    missing_permissions,
    permissions_value,
    unknown,
)
from fakes.discord_openapi import invalid_form_body, request_bodies

if TYPE_CHECKING:
    from fakes.discord import FakeDiscord

_log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# typed keys for per-request / per-response storage (aiohttp warns on plain string keys)
REC = web.RequestKey("fake_discord_record", RecordedRequest)
BODY_JSON = web.ResponseKey("fake_discord_json", object)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    # discord.py compares Content-Type with == "application/json": no charset suffix allowed
    resp = web.Response(body=json.dumps(data).encode(), status=status, content_type="application/json", headers=headers)
    resp[BODY_JSON] = data
    return resp


def no_content() -> web.Response:
    return web.Response(status=204)


async def read_body(request: web.Request) -> tuple[Any, list[UploadedFile]]:
    """JSON body, or multipart ``payload_json`` + ``files[N]`` parts (bytes kept)."""
    if request.content_type.startswith("multipart/"):
        payload: Any = None
        files: list[UploadedFile] = []
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "payload_json":
                payload = json.loads(await part.text())
            elif part.filename is not None:
                data = bytes(await part.read())
                files.append(UploadedFile(part.name or "", part.filename, part.headers.get("Content-Type"), data))
        return payload, files
    raw = await request.read()
    if not raw:
        return None, []
    try:
        return json.loads(raw), []
    except ValueError:
        raise DiscordHTTPError(400, 50109, "The request body contains invalid JSON.") from None


@dataclass
class _Bucket:
    reset_at: float
    used: int = 0


_NO_AUTH = re.compile(r"^/(webhooks/\d+/[^/]+|interactions/\d+/[^/]+/callback)")
_INTERACTION_PATH = re.compile(r"^/interactions/(\d+)/")
_WEBHOOK_PATH = re.compile(r"^/webhooks/\d+/([^/]+)")
_MESSAGE_PATH = re.compile(r"/messages/(\d+)")
_MAJOR = re.compile(r"^/(channels|guilds|webhooks|interactions)/(\d+)")
_NAME = re.compile(r"^[-_\w]{1,32}$")
_EMOJI_NAME = re.compile(r"[A-Za-z0-9_]{2,32}")
_DATA_URI = re.compile(r"data:image/(?:png|gif|webp|jpeg);base64,([A-Za-z0-9+/=]+)")
MAX_EMOJI_BYTES = 256 * 1024
MAX_APP_EMOJIS = 2000
MAX_FOLLOWUPS = 5  # per interaction of a user-installed app where the bot is not a member


class RestApi:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self._buckets: dict[tuple[str, str, str], _Bucket] = {}

    @property
    def msgs(self) -> MessageStore:
        return self.fake._msgs

    # ---- plumbing ------------------------------------------------------------------------------

    def register(self, app: web.Application) -> None:
        r = app.router
        p = API_PREFIX
        r.add_get(p + "/gateway", self.get_gateway)
        r.add_get(p + "/gateway/bot", self.get_gateway_bot)
        r.add_get(p + "/users/@me", self.get_me)
        r.add_post(p + "/users/@me/channels", self.create_dm)
        r.add_get(p + "/users/{user_id}", self.get_user)
        r.add_get(p + "/oauth2/applications/@me", self.get_application)
        r.add_get(p + "/applications/@me", self.get_application)
        r.add_get(p + "/applications/{app_id}/emojis", self.list_app_emojis)
        r.add_post(p + "/applications/{app_id}/emojis", self.create_app_emoji)
        for base in ("/applications/{app_id}/commands", "/applications/{app_id}/guilds/{guild_id}/commands"):
            r.add_get(p + base, self.get_commands)
            r.add_put(p + base, self.put_commands)
            r.add_post(p + base, self.post_command)
            r.add_get(p + base + "/{command_id}", self.get_command)
            r.add_delete(p + base + "/{command_id}", self.delete_command)
        ch = p + "/channels/{channel_id}"
        r.add_get(ch, self.get_channel)
        r.add_post(ch + "/typing", self.typing)
        r.add_get(ch + "/messages", self.list_messages)
        r.add_post(ch + "/messages", self.create_channel_message)
        r.add_get(ch + "/messages/{message_id}", self.get_channel_message)
        r.add_patch(ch + "/messages/{message_id}", self.edit_channel_message)
        r.add_delete(ch + "/messages/{message_id}", self.delete_channel_message)
        rx = ch + "/messages/{message_id}/reactions"
        r.add_put(rx + "/{emoji}/@me", self.add_own_reaction)
        r.add_delete(rx + "/{emoji}/@me", self.remove_reaction)
        r.add_delete(rx + "/{emoji}/{user_id}", self.remove_reaction)
        r.add_get(rx + "/{emoji}", self.get_reactions)
        r.add_delete(rx + "/{emoji}", self.clear_reactions)
        r.add_delete(rx, self.clear_reactions)
        g = p + "/guilds/{guild_id}"
        r.add_get(g, self.get_guild)
        r.add_get(g + "/channels", self.get_guild_channels)
        r.add_get(g + "/roles", self.get_guild_roles)
        r.add_get(g + "/members/{user_id}", self.get_member)
        r.add_post(p + "/interactions/{interaction_id}/{token}/callback", self.interaction_callback)
        wh = p + "/webhooks/{app_id}/{token}"
        r.add_post(wh, self.execute_webhook)
        r.add_get(wh + "/messages/{message_id}", self.get_webhook_message)
        r.add_patch(wh + "/messages/{message_id}", self.edit_webhook_message)
        r.add_delete(wh + "/messages/{message_id}", self.delete_webhook_message)
        r.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self.cdn)
        r.add_get("/ephemeral-attachments/{app_id}/{attachment_id}/{filename}", self.cdn)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(API_PREFIX + "/"):
            return await handler(request)
        path = request.path[len(API_PREFIX) :]
        rec = RecordedRequest(request.method, path, dict(request.query))
        resource = request.match_info.route.resource
        rec.route = resource.canonical[len(API_PREFIX) :] if resource is not None else ""
        self._annotate(rec)
        self.fake.requests.append(rec)
        resp: web.StreamResponse
        try:
            rec.json, rec.files = await read_body(request)
            request[REC] = rec
            if self.fake.check_bodies:
                self._check_body(rec)
            fault = self.fake._take_fault(request.method, path, files=bool(rec.files))
            rec.fault = fault
            if fault is not None and fault.delay:
                await asyncio.sleep(fault.delay)
            if fault is not None and fault.status is not None:
                resp = json_response(fault.json, fault.status, fault.headers)
            else:
                self._check_auth(request, path)
                resp = await handler(request)
                self._add_ratelimit_headers(resp, request.method, rec.route or path, path)
                if fault is not None and fault.hold:
                    rec.held = True
                    self.fake._changed()
                    await asyncio.sleep(fault.hold)
                if fault is not None and fault.drop and request.transport is not None:
                    request.transport.close()  # the answer never reaches the client
        except DiscordHTTPError as exc:
            resp = json_response(exc.body(), exc.status)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
            self.fake.unhandled.append(rec)
            resp = json_response({"message": f"Unknown Route: {request.method} {path}", "code": 10000}, 404)
        except Exception as exc:
            # a bug in the fake: answer 400 (a 5xx would make discord.py retry for seconds) and keep it for asserts
            _log.exception("fake Discord failed on %s %s", request.method, path)
            self.fake.internal_errors.append(exc)
            resp = json_response({"message": f"fake Discord internal error: {exc!r}", "code": 0}, 400)
        rec.status = resp.status
        rec.response = resp.get(BODY_JSON)
        rec.answered_at = time.monotonic()
        self.fake._changed()
        return resp

    def _check_body(self, rec: RecordedRequest) -> None:
        """Refuse, as Discord would, a body its OpenAPI description forbids, and keep it for the test to fail on."""
        violations = request_bodies().check(rec.method, rec.path, rec.json, has_files=bool(rec.files))
        if violations:
            _log.warning("fake Discord refused a request body: %s", "; ".join(map(str, violations)))
            self.fake.spec_violations.extend(violations)
            raise invalid_form_body(violations)

    def _annotate(self, rec: RecordedRequest) -> None:
        """Tie the request to the interaction / message it concerns, for assertions."""
        if m := _INTERACTION_PATH.match(rec.path):
            rec.interaction_id = int(m.group(1))
        elif (m := _WEBHOOK_PATH.match(rec.path)) and (handle := self.fake._by_token.get(m.group(1))):
            rec.interaction_id = handle.id
            if rec.path.endswith("/@original"):
                rec.message_id = handle.original_message_id
        if m := _MESSAGE_PATH.search(rec.path):
            rec.message_id = int(m.group(1))

    def _check_auth(self, request: web.Request, path: str) -> None:
        if _NO_AUTH.match(path):
            return
        auth = request.headers.get("Authorization", "")
        token = self.fake.token
        if not auth.startswith("Bot ") or (token is not None and auth != f"Bot {token}"):
            raise DiscordHTTPError(401, 0, "401: Unauthorized")

    def _add_ratelimit_headers(self, resp: web.StreamResponse, method: str, route: str, path: str) -> None:
        if self.fake.rate_limit is None:
            return
        limit, window = self.fake.rate_limit
        major = _MAJOR.match(path)
        scope = major.group(2) if major else ""
        if hook := _WEBHOOK_PATH.match(path):
            # The id of an interaction webhook is the application's, shared by every interaction; Discord
            # limits these routes per interaction (token), as discord.py assumes (the token is a major parameter).
            scope += "/" + hook.group(1)
        key = (method, route, scope)
        now = time.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None or now >= bucket.reset_at:
            bucket = self._buckets[key] = _Bucket(reset_at=now + window)
        bucket.used += 1
        reset_after = max(bucket.reset_at - now, 0.0)
        resp.headers.update(
            {
                "X-RateLimit-Limit": str(limit),
                "X-RateLimit-Remaining": str(max(limit - bucket.used, 0)),
                "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
                "X-RateLimit-Reset-After": f"{reset_after:.3f}",
                "X-RateLimit-Bucket": hashlib.sha1(f"{method} {route}".encode()).hexdigest()[:32],
                "Via": "1.1 google",
            }
        )

    # ---- lookups and permissions ---------------------------------------------------------------

    def _body(self, request: web.Request) -> JSON:
        body = request[REC].json
        return body if isinstance(body, dict) else {}

    def _files(self, request: web.Request) -> list[UploadedFile]:
        files: list[UploadedFile] = request[REC].files
        return files

    def _channel(self, request: web.Request) -> FakeChannel:
        try:
            channel = self.fake.channels[int(request.match_info["channel_id"])]
        except (KeyError, ValueError):
            raise unknown("Channel", 10003) from None
        self._need(channel, "view_channel")
        return channel

    def _message(self, request: web.Request, channel: FakeChannel) -> StoredMessage:
        try:
            msg = self.fake.messages[int(request.match_info["message_id"])]
        except (KeyError, ValueError):
            raise unknown("Message", 10008) from None
        if msg.channel_id != channel.id or msg.deleted or msg.ephemeral:
            raise unknown("Message", 10008)
        return msg

    def _has(self, channel: FakeChannel, *names: str) -> bool:
        wanted = permissions_value(names)
        return self.msgs.bot_permissions(channel) & wanted == wanted

    def _need(self, channel: FakeChannel, *names: str) -> None:
        if not self._has(channel, "view_channel"):
            raise missing_access()
        if not self._has(channel, *names):
            raise missing_permissions()

    # ---- login, gateway, application, commands -------------------------------------------------

    async def get_gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self.fake.gateway_url})

    async def get_gateway_bot(self, request: web.Request) -> web.Response:
        limits = {"total": 1000, "remaining": 999, "reset_after": 86_400_000, "max_concurrency": 1}
        return json_response(
            {"url": self.fake.gateway_url, "shards": self.fake.shard_count, "session_start_limit": limits}
        )

    async def get_me(self, request: web.Request) -> web.Response:
        return json_response(self.fake.bot.payload() | {"verified": True, "mfa_enabled": False})

    async def get_user(self, request: web.Request) -> web.Response:
        user = self.fake.users.get(int(request.match_info["user_id"]))
        if user is None:
            raise unknown("User", 10013)
        return json_response(user.payload())

    async def create_dm(self, request: web.Request) -> web.Response:
        user_id = int(self._body(request).get("recipient_id", 0))
        if user_id not in self.fake.users:
            raise unknown("User", 10013)
        return json_response(self.fake.dm_channel(user_id).payload())

    async def get_application(self, request: web.Request) -> web.Response:
        return json_response(self.fake.application_payload())

    async def list_app_emojis(self, request: web.Request) -> web.Response:
        self._check_app(request)
        return json_response({"items": [self._emoji_payload(e) for e in self.fake.app_emojis.values()]})

    async def create_app_emoji(self, request: web.Request) -> web.Response:
        """An emoji of the application's own: a unique name of 2-32 word characters, a PNG, GIF or WebP data URI
        of at most 256 KiB, at most 2000 of them."""
        self._check_app(request)
        body = self._body(request)
        name, image = str(body.get("name", "")), str(body.get("image", ""))
        if not _EMOJI_NAME.fullmatch(name):
            raise invalid_form("name", "STRING_TYPE_REGEX", "Must be 2-32 letters, digits or underscores")
        if any(e["name"] == name for e in self.fake.app_emojis.values()):
            raise invalid_form("name", "APPLICATION_EMOJI_NAME_ALREADY_TAKEN", "Application emoji names must be unique")
        match = _DATA_URI.fullmatch(image)
        if match is None or len(base64.b64decode(match.group(1), validate=True)) > MAX_EMOJI_BYTES:
            raise invalid_form("image", "BINARY_TYPE_MAX_SIZE", "An image (data URI) of at most 256 KiB")
        if len(self.fake.app_emojis) >= MAX_APP_EMOJIS:
            raise DiscordHTTPError(400, 30018, "Maximum number of emojis reached")
        emoji_id = self.fake._snowflakes.next()
        emoji: JSON = {"id": emoji_id, "name": name, "image": image}
        self.fake.app_emojis[emoji_id] = emoji
        return json_response(self._emoji_payload(emoji))

    def _emoji_payload(self, emoji: JSON) -> JSON:
        return {
            "id": str(emoji["id"]),
            "name": emoji["name"],
            "roles": [],
            "user": self.fake.bot.payload(),
            "require_colons": True,
            "managed": False,
            "animated": False,
            "available": True,
        }

    def _check_app(self, request: web.Request) -> None:
        if int(request.match_info["app_id"]) != self.fake.application_id:
            raise unknown("Application", 10002)

    def _command_list(self, request: web.Request) -> list[JSON]:
        if int(request.match_info["app_id"]) != self.fake.application_id:
            raise unknown("Application", 10002)
        guild_id = request.match_info.get("guild_id")
        if guild_id is None:
            return self.fake.global_commands
        if int(guild_id) not in self.fake.guilds:
            raise missing_access()
        return self.fake.guild_commands.setdefault(int(guild_id), [])

    def _validate_command(self, cmd: JSON, n: int) -> None:
        ctype = int(cmd.get("type", 1))
        name = cmd.get("name", "")
        if ctype == 1 and (not _NAME.match(name) or name != name.lower()):
            raise invalid_form(f"{n}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
        if ctype == 1 and not 1 <= len(cmd.get("description") or "") <= 100:
            raise invalid_form(f"{n}.description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        self._validate_options(cmd.get("options") or [], f"{n}.options")

    def _validate_options(self, options: list[JSON], where: str) -> None:
        if len(options) > 25:
            raise invalid_form(where, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        seen_optional = False
        for i, opt in enumerate(options):
            if opt.get("type") in (1, 2):
                self._validate_options(opt.get("options") or [], f"{where}.{i}.options")
                continue
            if opt.get("required") and seen_optional:
                raise invalid_form(
                    f"{where}.{i}.required",
                    "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                    "Required options must be placed before non-required options",
                )
            seen_optional = seen_optional or not opt.get("required")
            if len(opt.get("choices") or []) > 25:
                raise invalid_form(f"{where}.{i}.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")

    def _stored_command(self, cmd: JSON, existing: list[JSON], guild_id: str | None) -> JSON:
        ctype = int(cmd.get("type", 1))
        old = next((c for c in existing if c["name"] == cmd["name"] and int(c.get("type", 1)) == ctype), None)
        stored: JSON = {
            "description": "",
            "options": [],
            "default_member_permissions": None,
            "dm_permission": True,
            "nsfw": False,
            "contexts": None,
            "integration_types": [0],
            **cmd,
            "id": old["id"] if old else str(self.fake._snowflakes.next()),
            "application_id": str(self.fake.application_id),
            "type": ctype,
            "version": str(self.fake._snowflakes.next()),
        }
        if guild_id is not None:
            stored["guild_id"] = guild_id
        return stored

    async def get_commands(self, request: web.Request) -> web.Response:
        return json_response(self._command_list(request))

    async def put_commands(self, request: web.Request) -> web.Response:
        commands = self._command_list(request)
        body = request[REC].json or []
        if len(body) > 100:
            raise invalid_form("_root", "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
        seen: set[tuple[str, int]] = set()
        for n, cmd in enumerate(body):
            self._validate_command(cmd, n)
            key = (cmd["name"], int(cmd.get("type", 1)))
            if key in seen:
                raise invalid_form(
                    f"{n}.name", "APPLICATION_COMMANDS_DUPLICATE_NAME", "Application command names must be unique"
                )
            seen.add(key)
        stored = [self._stored_command(c, commands, request.match_info.get("guild_id")) for c in body]
        commands[:] = stored
        return json_response(stored)

    async def post_command(self, request: web.Request) -> web.Response:
        commands = self._command_list(request)
        cmd = self._body(request)
        self._validate_command(cmd, 0)
        stored = self._stored_command(cmd, commands, request.match_info.get("guild_id"))
        commands[:] = [c for c in commands if c["id"] != stored["id"]] + [stored]
        return json_response(stored, 201)

    async def get_command(self, request: web.Request) -> web.Response:
        for cmd in self._command_list(request):
            if cmd["id"] == request.match_info["command_id"]:
                return json_response(cmd)
        raise unknown("application command", 10063)

    async def delete_command(self, request: web.Request) -> web.Response:
        commands = self._command_list(request)
        remaining = [c for c in commands if c["id"] != request.match_info["command_id"]]
        if len(remaining) == len(commands):
            raise unknown("application command", 10063)
        commands[:] = remaining
        return no_content()

    # ---- guilds --------------------------------------------------------------------------------

    def _guild(self, request: web.Request) -> FakeGuild:
        guild = self.fake.guilds.get(int(request.match_info["guild_id"]))
        if guild is None:
            raise unknown("Guild", 10004)
        return guild

    async def get_guild(self, request: web.Request) -> web.Response:
        guild = self._guild(request)
        payload = guild.payload(bot_user_id=self.fake.bot.id, all_members=False)
        for key in ("members", "channels", "threads", "presences", "voice_states", "joined_at", "large"):
            payload.pop(key, None)
        return json_response(payload)

    async def get_guild_channels(self, request: web.Request) -> web.Response:
        return json_response([c.payload() for c in self._guild(request).channels.values()])

    async def get_guild_roles(self, request: web.Request) -> web.Response:
        return json_response([r.payload() for r in self._guild(request).roles.values()])

    async def get_member(self, request: web.Request) -> web.Response:
        member = self._guild(request).members.get(int(request.match_info["user_id"]))
        if member is None:
            raise unknown("Member", 10007)
        return json_response(member.payload())

    # ---- channels and messages -----------------------------------------------------------------

    async def get_channel(self, request: web.Request) -> web.Response:
        return json_response(self._channel(request).payload())

    async def typing(self, request: web.Request) -> web.Response:
        self._need(self._channel(request), "send_messages")
        return no_content()

    async def list_messages(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        self._need(channel, "read_message_history")
        msgs = [
            m for m in self.fake.messages.values() if m.channel_id == channel.id and not m.deleted and not m.ephemeral
        ]
        q = request.query
        if "before" in q:
            msgs = [m for m in msgs if m.id < int(q["before"])]
        if "after" in q:
            msgs = [m for m in msgs if m.id > int(q["after"])]
        msgs.sort(key=lambda m: m.id, reverse=True)
        limit = min(int(q.get("limit", 50)), 100)
        return json_response([self.msgs.message_payload(m) for m in msgs[:limit]])

    async def get_channel_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        self._need(channel, "read_message_history")
        return json_response(self.msgs.message_payload(self._message(request, channel)))

    async def create_channel_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        files = self._files(request)
        self._need(channel, "send_messages", *(["attach_files"] if files else []))
        body = self._body(request)
        earlier = self.msgs.by_nonce(channel, self.fake.bot, body)
        if earlier is not None:
            request[REC].message_id = earlier.id
            return json_response(self.msgs.message_payload(earlier))
        msg = self.msgs.create_message(channel, self.fake.bot, body, files, upload_limit=self.fake.upload_limit)
        request[REC].message_id = msg.id
        self.msgs.dispatch_message("MESSAGE_CREATE", msg)
        return json_response(self.msgs.message_payload(msg))

    async def edit_channel_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        msg = self._message(request, channel)
        if msg.author.id != self.fake.bot.id:
            raise DiscordHTTPError(403, 50005, "Cannot edit a message authored by another user")
        files = self._files(request)
        if files:
            self._need(channel, "attach_files")
        route = f"PATCH {request[REC].path}"
        self.msgs.edit_message(msg, self._body(request), files, route=route, upload_limit=self.fake.upload_limit)
        self.msgs.dispatch_message("MESSAGE_UPDATE", msg)
        return json_response(self.msgs.message_payload(msg))

    async def delete_channel_message(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        msg = self._message(request, channel)
        if msg.author.id != self.fake.bot.id:
            self._need(channel, "manage_messages")
        self.msgs.delete_message(msg)
        return no_content()

    # ---- reactions -----------------------------------------------------------------------------

    def _reaction_target(self, request: web.Request) -> tuple[StoredMessage, str, FakeChannel]:
        channel = self._channel(request)
        self._need(channel, "read_message_history")
        msg = self._message(request, channel)
        key = emoji_key(request.match_info["emoji"])
        if not key:
            raise unknown("Emoji", 10014)
        return msg, key, channel

    async def add_own_reaction(self, request: web.Request) -> web.Response:
        msg, key, channel = self._reaction_target(request)
        users = msg.reactions.setdefault(key, [])
        if not users:
            self._need(channel, "add_reactions")  # adding to an existing reaction needs no permission
        if self.fake.bot.id not in users:
            users.append(self.fake.bot.id)
            self.msgs.reaction_event(msg, self.fake.bot.id, key, add=True)
        return no_content()

    async def remove_reaction(self, request: web.Request) -> web.Response:
        msg, key, channel = self._reaction_target(request)
        raw_user = request.match_info.get("user_id")
        user_id = self.fake.bot.id if raw_user is None else int(raw_user)
        if user_id != self.fake.bot.id:
            self._need(channel, "manage_messages")
        users = msg.reactions.get(key, [])
        if user_id in users:
            users.remove(user_id)
            self.msgs.reaction_event(msg, user_id, key, add=False)
        return no_content()

    async def get_reactions(self, request: web.Request) -> web.Response:
        msg, key, _ = self._reaction_target(request)
        return json_response([self.fake.users[u].payload() for u in msg.reactions.get(key, []) if u in self.fake.users])

    async def clear_reactions(self, request: web.Request) -> web.Response:
        channel = self._channel(request)
        self._need(channel, "manage_messages")
        msg = self._message(request, channel)
        if "emoji" in request.match_info:
            msg.reactions.pop(emoji_key(request.match_info["emoji"]), None)
        else:
            msg.reactions.clear()
        return no_content()

    # ---- interactions --------------------------------------------------------------------------

    async def interaction_callback(self, request: web.Request) -> web.Response:
        handle = self.fake.interactions.get(int(request.match_info["interaction_id"]))
        if handle is None or handle.token != request.match_info["token"]:
            raise unknown("interaction", 10062)
        if handle.response is not None:
            raise DiscordHTTPError(400, 40060, "Interaction has already been acknowledged.")
        deadline = self.fake.interaction_deadline
        if deadline is not None and time.monotonic() - handle.sent_at > deadline:
            raise unknown("interaction", 10062)
        body = self._body(request)
        files = self._files(request)
        cb_type = int(body.get("type", 0))
        data: JSON = body.get("data") or {}
        if cb_type not in ALLOWED_CALLBACKS.get(handle.type, set()):
            raise invalid_form("type", "INTERACTION_CALLBACK_TYPE_INVALID", "Invalid interaction callback type")
        if cb_type in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE) and handle.source_message_id is None:
            raise invalid_form("type", "INTERACTION_CALLBACK_TYPE_INVALID", "No message to update")
        msg = self._apply_callback(handle, cb_type, data, files)
        handle.response = InteractionResponse(cb_type, body.get("data"), time.monotonic(), files)
        interaction: JSON = {"id": str(handle.id), "type": handle.type}
        resource: JSON = {"type": cb_type}
        if msg is not None:
            interaction |= {
                "response_message_id": str(msg.id),
                "response_message_loading": msg.loading,
                "response_message_ephemeral": msg.ephemeral,
            }
            resource["message"] = self.msgs.message_payload(msg)
        self.fake._changed()
        return json_response({"interaction": interaction, "resource": resource})

    def _apply_callback(
        self, handle: InteractionHandle, cb_type: int, data: JSON, files: list[UploadedFile]
    ) -> StoredMessage | None:
        limit = int(handle.payload["attachment_size_limit"])
        route = f"callback {cb_type}"
        if cb_type in (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE):
            channel = self.fake.channels[handle.channel_id]
            mask = FLAG_EPHEMERAL | FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_COMPONENTS_V2
            body = data if cb_type == CHANNEL_MESSAGE else {"flags": int(data.get("flags") or 0) & FLAG_EPHEMERAL}
            if handle.forced_ephemeral:
                body = body | {"flags": int(body.get("flags") or 0) | FLAG_EPHEMERAL}
            msg = self.msgs.create_message(
                channel,
                self.fake.bot,
                body,
                files,
                upload_limit=limit,
                flags_mask=mask,
                type=self._response_message_type(handle),
                allow_empty=cb_type == DEFERRED_CHANNEL_MESSAGE,
                webhook_id=self.fake.application_id,
                application_id=self.fake.application_id,
                interaction_id=handle.id,
                interaction_metadata=self._metadata(handle),
            )
            if cb_type == DEFERRED_CHANNEL_MESSAGE:
                msg.flags |= FLAG_LOADING
            handle.original_message_id = msg.id
            self.msgs.dispatch_message("MESSAGE_CREATE", msg)
            return msg
        if cb_type in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE):
            assert handle.source_message_id is not None
            msg = self.fake.messages[handle.source_message_id]
            handle.original_message_id = msg.id
            if cb_type == UPDATE_MESSAGE:
                self.msgs.edit_message(msg, data, files, route=route, upload_limit=limit)
                self.msgs.dispatch_message("MESSAGE_UPDATE", msg)
            return msg
        if cb_type == AUTOCOMPLETE_RESULT:
            if len(data.get("choices") or []) > 25:
                raise invalid_form("data.choices", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        elif cb_type == MODAL:
            if not data.get("custom_id") or not data.get("title") or not data.get("components"):
                raise invalid_form("data", "BASE_TYPE_REQUIRED", "custom_id, title and components are required")
            self.fake.modals[data["custom_id"]] = handle
        return None

    def _response_message_type(self, handle: InteractionHandle) -> int:
        if handle.type == 2:
            return 20 if handle.payload["data"].get("type", 1) == 1 else 23
        return 0

    def _metadata(self, handle: InteractionHandle) -> JSON:
        user = self.fake.users[handle.user_id]
        owners = handle.payload.get("authorizing_integration_owners", {})
        meta: JSON = {
            "id": str(handle.id),
            "type": handle.type,
            "user": user.payload(),
            "authorizing_integration_owners": owners,
        }
        if handle.source_message_id is not None:
            meta["interacted_message_id"] = str(handle.source_message_id)
        return meta

    def _webhook_handle(self, request: web.Request) -> InteractionHandle:
        handle = self.fake._by_token.get(request.match_info["token"])
        if int(request.match_info["app_id"]) != self.fake.application_id or handle is None:
            raise unknown("Webhook", 10015)
        if handle.token_expired or time.monotonic() - handle.created_at > self.fake.token_ttl:
            raise DiscordHTTPError(401, 50027, "Invalid Webhook Token")
        return handle

    def _webhook_message(self, request: web.Request, handle: InteractionHandle) -> StoredMessage:
        raw = request.match_info["message_id"]
        if raw == "@original":
            msg_id = handle.original_message_id
            if handle.response is None:
                raise unknown("Webhook", 10015)
        else:
            msg_id = int(raw)
            if msg_id != handle.original_message_id and msg_id not in handle.followup_ids:
                raise unknown("Message", 10008)
        msg = self.fake.messages.get(msg_id or 0)
        if msg is None or msg.deleted:
            raise unknown("Message", 10008)
        return msg

    async def execute_webhook(self, request: web.Request) -> web.Response:
        handle = self._webhook_handle(request)
        if handle.response is None:
            raise unknown("Webhook", 10015)  # follow-ups only work after the interaction was acknowledged
        body = self._body(request)
        files = self._files(request)
        limit = int(handle.payload["attachment_size_limit"])
        original = handle.original_message()
        if (
            handle.response.type == DEFERRED_CHANNEL_MESSAGE
            and original is not None
            and original.loading
            and not original.deleted
        ):
            # Discord: the first follow-up after a deferred response edits the "thinking" message
            msg = self.msgs.edit_message(
                original, body, files, route="POST followup (edits deferred)", upload_limit=limit
            )
            self.msgs.dispatch_message("MESSAGE_UPDATE", msg)
        else:
            if handle.user_install and len(handle.followup_ids) >= MAX_FOLLOWUPS:
                raise DiscordHTTPError(400, 0, f"Maximum number of follow-up messages ({MAX_FOLLOWUPS}) reached")
            if handle.forced_ephemeral:
                body = body | {"flags": int(body.get("flags") or 0) | FLAG_EPHEMERAL}
            channel = self.fake.channels[handle.channel_id]
            msg = self.msgs.create_message(
                channel,
                self.fake.bot,
                body,
                files,
                upload_limit=limit,
                flags_mask=FLAG_EPHEMERAL | FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_COMPONENTS_V2,
                webhook_id=self.fake.application_id,
                application_id=self.fake.application_id,
                interaction_id=handle.id,
                interaction_metadata=self._metadata(handle),
            )
            handle.followup_ids.append(msg.id)
            self.msgs.dispatch_message("MESSAGE_CREATE", msg)
        request[REC].message_id = msg.id
        if request.query.get("wait", "").lower() in ("1", "true"):
            return json_response(self.msgs.message_payload(msg))
        return no_content()

    async def get_webhook_message(self, request: web.Request) -> web.Response:
        handle = self._webhook_handle(request)
        return json_response(self.msgs.message_payload(self._webhook_message(request, handle)))

    async def edit_webhook_message(self, request: web.Request) -> web.Response:
        handle = self._webhook_handle(request)
        msg = self._webhook_message(request, handle)
        request[REC].message_id = msg.id
        route = f"PATCH {request[REC].path}"
        limit = int(handle.payload["attachment_size_limit"])
        self.msgs.edit_message(msg, self._body(request), self._files(request), route=route, upload_limit=limit)
        self.msgs.dispatch_message("MESSAGE_UPDATE", msg)
        return json_response(self.msgs.message_payload(msg))

    async def delete_webhook_message(self, request: web.Request) -> web.Response:
        handle = self._webhook_handle(request)
        msg = self._webhook_message(request, handle)
        request[REC].message_id = msg.id
        self.msgs.delete_message(msg)
        return no_content()

    # ---- CDN -----------------------------------------------------------------------------------

    async def cdn(self, request: web.Request) -> web.Response:
        self.fake.cdn_requests.append(request.path)
        try:
            att = self.fake.attachments[int(request.match_info["attachment_id"])]
        except (KeyError, ValueError):
            return web.Response(status=404, text="Not Found")
        try:
            expired = int(request.query.get("ex", ""), 16) < self.fake.cdn_now()
        except ValueError:
            expired = False  # an unsigned link, as links were before 2024: served
        if expired:  # Discord's answer to a signed link past its expiry
            return web.Response(status=404, text="This content is no longer available.")
        if att.filename != request.match_info["filename"] or not self.fake.link_is_current(att, request.query):
            return web.Response(status=404, text="Not Found")
        return web.Response(body=att.data, content_type=att.content_type)


def new_token() -> str:
    """Interaction tokens are long opaque strings."""
    return "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(96)
