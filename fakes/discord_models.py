"""Data model of the fake Discord: users, guilds, channels, messages, recorded requests, faults.

Everything here is plain data plus the functions that turn it into Discord-shaped JSON payloads.
The server lives in discord_rest.py (routes), discord_messages.py, discord_gateway.py, discord_interactions.py
and discord_actions.py (what users do); tests import everything from fakes.discord.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import discord

from fakes.common import Fault
from fakes.discord_components import GalleryItem, gallery, texts

JSON = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000
API_PREFIX = "/api/v10"

# Message flags the fake cares about.
FLAG_SUPPRESS_EMBEDS = 1 << 2
FLAG_EPHEMERAL = 1 << 6
FLAG_LOADING = 1 << 7
FLAG_SUPPRESS_NOTIFICATIONS = 1 << 12
FLAG_COMPONENTS_V2 = 1 << 15

# Gateway intents used to filter dispatched events, as Discord does.
INTENT_GUILDS = 1 << 0
INTENT_GUILD_MEMBERS = 1 << 1
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_GUILD_MESSAGE_REACTIONS = 1 << 10
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_DIRECT_MESSAGE_REACTIONS = 1 << 13
INTENT_MESSAGE_CONTENT = 1 << 15

DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
MAX_CONTENT = 2000
MAX_ATTACHMENTS = 10
MAX_EMBEDS = 10
NONCE_WINDOW = 180.0  # seconds an enforced nonce is remembered ("the past few minutes")

ALL_PERMISSIONS: int = discord.Permissions.all().value
ADMINISTRATOR: int = discord.Permissions(administrator=True).value
# What @everyone gets in a freshly created server.
DEFAULT_EVERYONE_PERMISSIONS: int = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    embed_links=True,
    attach_files=True,
    add_reactions=True,
    use_external_emojis=True,
    read_message_history=True,
    use_application_commands=True,
    create_instant_invite=True,
    change_nickname=True,
    connect=True,
    speak=True,
).value
# A typical bot invite: what an image bot asks for.
DEFAULT_BOT_PERMISSIONS: int = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    embed_links=True,
    attach_files=True,
    add_reactions=True,
    use_external_emojis=True,
    read_message_history=True,
).value

PermissionsLike = int | str | Iterable[str] | discord.Permissions | None


class HasId(Protocol):
    @property
    def id(self) -> int: ...


IdLike = int | HasId


def as_id(value: IdLike) -> int:
    """Accept either a raw snowflake or any fake object with an ``id``."""
    return value if isinstance(value, int) else int(value.id)


def permissions_value(perms: PermissionsLike) -> int:
    """Turn an int, a permission name, names, or discord.Permissions into the bit field."""
    if perms is None:
        return 0
    if isinstance(perms, bool):
        raise TypeError("permissions must be an int, names or discord.Permissions, not bool")
    if isinstance(perms, int):
        return perms
    if isinstance(perms, discord.Permissions):
        return perms.value
    names = [perms] if isinstance(perms, str) else list(perms)
    try:
        return discord.Permissions(**dict.fromkeys(names, True)).value
    except TypeError as exc:
        raise ValueError(f"unknown permission name in {names!r}") from exc


def utc_iso(ts: float | None = None) -> str:
    moment = dt.datetime.now(dt.UTC) if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC)
    return moment.isoformat()


class SnowflakeGenerator:
    """Strictly increasing snowflakes whose timestamp bits are (about) now, like Discord's."""

    def __init__(self) -> None:
        self._last = 0
        self._past = 0

    def next(self) -> int:
        candidate = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        if candidate <= self._last:
            candidate = self._last + 1
        self._last = candidate
        return candidate

    def earlier(self, seconds_ago: float) -> int:
        """A fresh snowflake whose timestamp is ``seconds_ago`` in the past (unique; not in the increasing order)."""
        self._past += 1
        ms = int((time.time() - seconds_ago) * 1000) - DISCORD_EPOCH_MS
        return (ms << 22) | (self._past & 0x3FFFFF)

    def next_for_shard(self, shard_id: int, shard_count: int) -> int:
        """A snowflake that routes to ``shard_id``: Discord shards guilds by (id >> 22) % count."""
        ms = max(int(time.time() * 1000) - DISCORD_EPOCH_MS, (self._last >> 22) + 1)
        ms += (shard_id - ms) % shard_count
        self._last = ms << 22
        return self._last


class DiscordHTTPError(Exception):
    """Raised by handlers; the middleware turns it into Discord's JSON error body."""

    def __init__(self, status: int, code: int, message: str, errors: JSON | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> JSON:
        body: JSON = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


def unknown(kind: str, code: int) -> DiscordHTTPError:
    return DiscordHTTPError(404, code, f"Unknown {kind}")


def missing_permissions() -> DiscordHTTPError:
    return DiscordHTTPError(403, 50013, "Missing Permissions")


def missing_access() -> DiscordHTTPError:
    return DiscordHTTPError(403, 50001, "Missing Access")


def invalid_form(field_path: str, code: str, message: str) -> DiscordHTTPError:
    errors: JSON = {"_errors": [{"code": code, "message": message}]}
    for part in reversed(field_path.split(".")):
        errors = {part: errors}
    return DiscordHTTPError(400, 50035, "Invalid Form Body", errors)


@dataclass
class FakeUser:
    id: int
    name: str
    bot: bool = False
    global_name: str | None = None

    def payload(self) -> JSON:
        return {
            "id": str(self.id),
            "username": self.name,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
        }


@dataclass
class FakeRole:
    id: int
    guild_id: int
    name: str
    permissions: int
    position: int = 0

    def payload(self) -> JSON:
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "icon": None,
            "unicode_emoji": None,
            "flags": 0,
        }


@dataclass
class FakeMember:
    guild_id: int
    user: FakeUser
    role_ids: list[int]
    joined_at: str = field(default_factory=utc_iso)
    nick: str | None = None

    @property
    def id(self) -> int:
        return self.user.id

    def payload(self, *, permissions: int | None = None, with_user: bool = True) -> JSON:
        data: JSON = {
            "roles": [str(r) for r in self.role_ids],
            "joined_at": self.joined_at,
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "premium_since": None,
            "communication_disabled_until": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
        }
        if with_user:
            data["user"] = self.user.payload()
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data


@dataclass
class Overwrite:
    id: int
    type: int  # 0 role, 1 member
    allow: int = 0
    deny: int = 0

    def payload(self) -> JSON:
        return {"id": str(self.id), "type": self.type, "allow": str(self.allow), "deny": str(self.deny)}


@dataclass
class FakeChannel:
    id: int
    guild_id: int | None
    name: str
    type: int = 0  # 0 text, 1 DM, 3 group DM
    position: int = 0
    topic: str | None = None
    overwrites: dict[int, Overwrite] = field(default_factory=dict)
    recipients: list[FakeUser] = field(default_factory=list)
    last_message_id: int | None = None
    nsfw: bool = False  # age-restricted

    def payload(self) -> JSON:
        if self.type == 3:
            return {
                "id": str(self.id),
                "type": 3,
                "name": self.name or None,
                "icon": None,
                "owner_id": str(self.recipients[0].id) if self.recipients else None,
                "last_message_id": str(self.last_message_id) if self.last_message_id else None,
                "recipients": [u.payload() for u in self.recipients],
                "flags": 0,
            }
        if self.type == 1:
            return {
                "id": str(self.id),
                "type": 1,
                "last_message_id": str(self.last_message_id) if self.last_message_id else None,
                "recipients": [u.payload() for u in self.recipients],
                "flags": 0,
            }
        return {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "permission_overwrites": [o.payload() for o in self.overwrites.values()],
            "nsfw": self.nsfw,
            "topic": self.topic,
            "last_message_id": str(self.last_message_id) if self.last_message_id else None,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "flags": 0,
        }


@dataclass
class FakeGuild:
    id: int
    name: str
    owner_id: int
    locale: str = "en-US"
    roles: dict[int, FakeRole] = field(default_factory=dict)
    channels: dict[int, FakeChannel] = field(default_factory=dict)
    members: dict[int, FakeMember] = field(default_factory=dict)
    joined_at: str = field(default_factory=utc_iso)
    # The server's "Use External Apps" setting: when off, a user-installed app's replies there are forced ephemeral.
    external_apps: bool = True

    @property
    def everyone(self) -> FakeRole:
        return self.roles[self.id]

    def permissions_for(self, user_id: int, channel: FakeChannel | None = None) -> int:
        """Discord's permission algorithm: base from roles, then channel overwrites in order."""
        if user_id == self.owner_id:
            return ALL_PERMISSIONS
        member = self.members.get(user_id)
        if member is None:
            return 0
        base = self.everyone.permissions
        for role_id in member.role_ids:
            role = self.roles.get(role_id)
            if role is not None:
                base |= role.permissions
        if base & ADMINISTRATOR:
            return ALL_PERMISSIONS
        if channel is None:
            return base
        perms = base
        everyone_ow = channel.overwrites.get(self.id)
        if everyone_ow is not None:
            perms = (perms & ~everyone_ow.deny) | everyone_ow.allow
        allow = deny = 0
        for ow in channel.overwrites.values():
            if ow.type == 0 and ow.id != self.id and ow.id in member.role_ids:
                allow |= ow.allow
                deny |= ow.deny
        perms = (perms & ~deny) | allow
        member_ow = channel.overwrites.get(user_id)
        if member_ow is not None and member_ow.type == 1:
            perms = (perms & ~member_ow.deny) | member_ow.allow
        return perms

    def payload(self, *, bot_user_id: int, all_members: bool) -> JSON:
        """GUILD_CREATE / GET guild payload. Without the members intent Discord only sends the bot."""
        members = [m for m in self.members.values() if all_members or m.id == bot_user_id]
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "banner": None,
            "description": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": self.locale,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "public_updates_channel_id": None,
            "max_members": 500000,
            "features": [],
            "roles": [r.payload() for r in self.roles.values()],
            "emojis": [],
            "stickers": [],
            "joined_at": self.joined_at,
            "large": False,
            "unavailable": False,
            "member_count": len(self.members),
            "members": [m.payload() for m in members],
            "channels": [c.payload() for c in self.channels.values()],
            "threads": [],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }


@dataclass
class StoredAttachment:
    id: int
    filename: str
    data: bytes
    content_type: str
    url: str
    proxy_url: str
    description: str | None = None
    ephemeral: bool = False

    @property
    def size(self) -> int:
        return len(self.data)

    def payload(self) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.proxy_url,
            "content_type": self.content_type,
        }
        if self.description is not None:
            data["description"] = self.description
        if self.ephemeral:
            data["ephemeral"] = True
        return data


@dataclass
class MessageEdit:
    """One edit of a message: what was sent, when, and what the message looked like after it."""

    at: float  # time.monotonic()
    route: str
    body: JSON
    new_attachments: list[StoredAttachment]
    content: str
    embeds: list[JSON]
    components: list[JSON]
    attachments: list[StoredAttachment]
    flags: int

    @property
    def text(self) -> str:
        """What a person read after this edit: the content, then a V2 message's text displays (a line each)."""
        return "\n".join([self.content] * bool(self.content) + texts(self.components))


@dataclass
class StoredMessage:
    id: int
    channel_id: int
    guild_id: int | None
    author: FakeUser
    content: str = ""
    embeds: list[JSON] = field(default_factory=list)
    components: list[JSON] = field(default_factory=list)
    attachments: list[StoredAttachment] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    tts: bool = False
    message_reference: JSON | None = None
    mentions: list[FakeUser] = field(default_factory=list)
    webhook_id: int | None = None
    application_id: int | None = None
    interaction_id: int | None = None
    interaction_metadata: JSON | None = None
    nonce: str | None = None
    created_at: float = field(default_factory=time.monotonic)
    timestamp: str = field(default_factory=utc_iso)
    edited_timestamp: str | None = None
    edits: list[MessageEdit] = field(default_factory=list)
    first_text: str = ""  # what a person read when the message was made, before any edit
    deleted: bool = False
    deleted_at: float | None = None
    # emoji key ("🔄" or "name:id") -> user ids in the order they reacted
    reactions: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.first_text = self.text

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & FLAG_EPHEMERAL)

    @property
    def lines_shown(self) -> list[str]:
        """What a person read, version by version: as made, then after each edit."""
        return [self.first_text, *(edit.text for edit in self.edits)]

    @property
    def loading(self) -> bool:
        return bool(self.flags & FLAG_LOADING)

    @property
    def components_v2(self) -> bool:
        return bool(self.flags & FLAG_COMPONENTS_V2)

    @property
    def text(self) -> str:
        """What a person reads: the content, then the text displays of a V2 message (a line each)."""
        return "\n".join([self.content] * bool(self.content) + texts(self.components))

    @property
    def gallery(self) -> list[GalleryItem]:
        """The images a V2 message shows in media galleries, in order."""
        return gallery(self.components)

    def attachment_bytes(self) -> list[bytes]:
        return [a.data for a in self.attachments]

    def shown_bytes(self) -> list[bytes]:
        """The bytes of the attachments its gallery shows, in the gallery's order."""
        by_name = {a.filename: a.data for a in self.attachments}
        return [by_name[item.filename] for item in self.gallery if item.filename in by_name]

    def payload(self, *, me_id: int, referenced: StoredMessage | None = None) -> JSON:
        data: JSON = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "author": self.author.payload(),
            "content": self.content,
            "timestamp": self.timestamp,
            "edited_timestamp": self.edited_timestamp,
            "tts": self.tts,
            "mention_everyone": False,
            "mentions": [u.payload() for u in self.mentions],
            "mention_roles": [],
            "attachments": [a.payload() for a in self.attachments],
            "embeds": self.embeds,
            "components": self.components,
            "pinned": False,
            "type": self.type,
            "flags": self.flags,
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        if self.reactions:
            data["reactions"] = [
                {
                    "emoji": emoji_payload(key),
                    "count": len(users),
                    "count_details": {"burst": 0, "normal": len(users)},
                    "burst_colors": [],
                    "me": me_id in users,
                    "me_burst": False,
                }
                for key, users in self.reactions.items()
                if users
            ]
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
        if self.application_id is not None:
            data["application_id"] = str(self.application_id)
        if self.interaction_metadata is not None:
            data["interaction_metadata"] = self.interaction_metadata
        if self.nonce is not None:
            data["nonce"] = self.nonce
        if self.message_reference is not None:
            data["message_reference"] = self.message_reference
            data["referenced_message"] = referenced.payload(me_id=me_id) if referenced else None
        return data


def safe_filename(name: str) -> str:
    """Discord replaces characters it does not keep in attachment names with underscores ("a b.png" -> "a_b.png")."""
    return re.sub(r"[^\w.\-]", "_", name) or "unknown"


def emoji_key(emoji: str) -> str:
    """Normalise a reaction emoji: unicode, or a custom one as ``name:id``, ``:name:id``, ``<a:name:id>``..."""
    match = re.fullmatch(r"<?(?:a?:)?(\w+):(\d+)>?", emoji)
    if match:
        return f"{match.group(1)}:{match.group(2)}"
    return emoji


def emoji_payload(key: str) -> JSON:
    match = re.fullmatch(r"(\w+):(\d+)", key)
    if match:
        return {"id": match.group(2), "name": match.group(1), "animated": False}
    return {"id": None, "name": key}


def default_error_body(status: int) -> JSON:
    if status == 429:
        return {"message": "You are being rate limited.", "retry_after": 0.2, "global": False}
    known = {
        400: {"message": "400: Bad Request", "code": 0},
        401: {"message": "401: Unauthorized", "code": 0},
        403: {"message": "Missing Permissions", "code": 50013},
        404: {"message": "404: Not Found", "code": 0},
        500: {"message": "500: Internal Server Error", "code": 0},
        502: {"message": "502: Bad Gateway", "code": 0},
        503: {"message": "503: Service Unavailable", "code": 0},
    }
    return known.get(status, {"message": f"{status}", "code": 0})


def make_fault(
    method: str,
    path_regex: str,
    status: int | None,
    *,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
    times: int | None = 1,
    delay: float = 0.0,
    hold: float = 0.0,
    drop: bool = False,
    with_files: bool | None = None,
) -> Fault:
    """A fault with Discord's body and headers for ``status`` unless given (429: retry_after from the body)."""
    if json is None and status is not None:
        json = default_error_body(status)
    all_headers: dict[str, str] = {}
    if status == 429:
        retry_after = float(json.get("retry_after", 0.2)) if isinstance(json, dict) else 0.2
        is_global = bool(isinstance(json, dict) and json.get("global"))
        all_headers = {
            # discord.py treats a 429 without Via as a Cloudflare ban and does not retry
            "Via": "1.1 google",
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{retry_after:.3f}",
            "X-RateLimit-Bucket": "fakeinjected0000000000000000000",
            "X-RateLimit-Scope": "global" if is_global else "user",
        }
        if is_global:
            all_headers["X-RateLimit-Global"] = "true"
    all_headers.update(headers or {})
    return Fault(
        status=status,
        json=json,
        headers=all_headers,
        delay=delay,
        times=times,
        method=method.upper(),
        path_regex=re.compile(path_regex),
        hold=hold,
        drop=drop,
        with_files=with_files,
    )
