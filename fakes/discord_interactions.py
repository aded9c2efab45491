"""Interactions: the handle a test gets back, and the INTERACTION_CREATE payloads (typed options)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fakes.common import UploadedFile
from fakes.discord_models import (
    ALL_PERMISSIONS,
    DEFAULT_BOT_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    JSON,
    FakeChannel,
    FakeGuild,
    FakeUser,
    PermissionsLike,
    StoredAttachment,
    StoredMessage,
    permissions_value,
)

if TYPE_CHECKING:
    from fakes.discord import FakeDiscord

# interaction types
PING, APPLICATION_COMMAND, MESSAGE_COMPONENT, AUTOCOMPLETE, MODAL_SUBMIT = 1, 2, 3, 4, 5
# callback types
CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE = 4, 5, 6, 7
AUTOCOMPLETE_RESULT, MODAL = 8, 9

# Which callback types Discord accepts for each interaction type.
ALLOWED_CALLBACKS: dict[int, set[int]] = {
    APPLICATION_COMMAND: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, MODAL},
    MESSAGE_COMPONENT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE, MODAL},
    AUTOCOMPLETE: {AUTOCOMPLETE_RESULT},
    MODAL_SUBMIT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE},
}

OPTION_SUB_COMMAND, OPTION_SUB_COMMAND_GROUP = 1, 2
OPTION_STRING, OPTION_INTEGER, OPTION_BOOLEAN, OPTION_USER = 3, 4, 5, 6
OPTION_CHANNEL, OPTION_ROLE, OPTION_MENTIONABLE, OPTION_NUMBER, OPTION_ATTACHMENT = 7, 8, 9, 10, 11


@dataclass
class InteractionResponse:
    """The bot's callback to an interaction."""

    type: int
    data: JSON | None
    at: float  # time.monotonic()
    files: list[UploadedFile] = field(default_factory=list)


class InteractionHandle:
    """What a test holds after firing an interaction: the response, the messages it produced."""

    def __init__(
        self,
        fake: FakeDiscord,
        *,
        id: int,
        token: str,
        type: int,
        payload: JSON,
        guild_id: int | None,
        channel_id: int,
        user_id: int,
        source_message_id: int | None = None,
        created_ago: float = 0.0,
    ) -> None:
        self._fake = fake
        self.id = id
        self.token = token
        self.type = type
        self.payload = payload
        self.guild_id = guild_id
        self.channel_id = channel_id
        self.user_id = user_id
        self.source_message_id = source_message_id  # the message a component/modal came from
        self.sent_at = time.monotonic()
        self.created_at = self.sent_at - created_ago  # what the id's timestamp says; the token's life runs from it
        self.response: InteractionResponse | None = None
        self.original_message_id: int | None = None
        self.followup_ids: list[int] = []
        self.token_expired = False
        # Through a user install where the bot is not: at most 5 follow-ups, and maybe forced ephemeral.
        self.user_install = False
        self.forced_ephemeral = False

    def __repr__(self) -> str:
        rtype = self.response.type if self.response else None
        return f"<InteractionHandle id={self.id} type={self.type} response_type={rtype}>"

    @property
    def response_type(self) -> int | None:
        return self.response.type if self.response else None

    @property
    def response_delay(self) -> float | None:
        """Seconds between dispatching the interaction and the bot's callback."""
        return None if self.response is None else self.response.at - self.sent_at

    @property
    def choices(self) -> list[JSON] | None:
        """Autocomplete result (callback type 8)."""
        if self.response is None or self.response.type != AUTOCOMPLETE_RESULT:
            return None
        return list((self.response.data or {}).get("choices", []))

    @property
    def modal(self) -> JSON | None:
        """The modal the bot opened (callback type 9)."""
        if self.response is None or self.response.type != MODAL:
            return None
        return self.response.data

    async def wait_response(self, timeout: float = 5.0) -> InteractionResponse:
        return await self._fake.wait_for(lambda: self.response, timeout=timeout, what=f"a response to {self!r}")

    def original_message(self) -> StoredMessage | None:
        if self.original_message_id is None:
            return None
        return self._fake.messages.get(self.original_message_id)

    async def wait_original(
        self, predicate: Callable[[StoredMessage], bool] | None = None, timeout: float = 5.0
    ) -> StoredMessage:
        """Wait until @original exists and satisfies ``predicate`` (default: not "thinking" any more)."""
        check = predicate or (lambda m: not m.loading)

        def ready() -> StoredMessage | None:
            msg = self.original_message()
            return msg if msg is not None and check(msg) else None

        return await self._fake.wait_for(ready, timeout=timeout, what=f"@original of {self!r}")

    def followups(self) -> list[StoredMessage]:
        return [self._fake.messages[m] for m in self.followup_ids]

    async def wait_followups(self, count: int = 1, timeout: float = 5.0) -> list[StoredMessage]:
        def ready() -> list[StoredMessage] | None:
            found = self.followups()
            return found if len(found) >= count else None

        return await self._fake.wait_for(ready, timeout=timeout, what=f"{count} follow-up(s) of {self!r}")

    def expire_token(self) -> None:
        """Simulate the 15-minute token expiry: webhook calls on this interaction now fail with 401."""
        self.token_expired = True


# where a command is used (the interaction's ``context``)
CONTEXT_GUILD, CONTEXT_BOT_DM, CONTEXT_PRIVATE_CHANNEL = 0, 1, 2
# what a user-installed app may do in a server without the bot: post through the interaction, with files
USER_INSTALL_APP_PERMISSIONS = permissions_value(
    ["view_channel", "send_messages", "embed_links", "attach_files", "read_message_history", "use_external_emojis"]
)


def user_install(fake: FakeDiscord, guild: FakeGuild | None, channel: FakeChannel) -> bool:
    """Whether the app can only be there through a user install: a server without the bot, or a private channel."""
    if guild is not None:
        return fake.bot.id not in guild.members
    return channel.id in fake.private_channels


def interaction_context(
    fake: FakeDiscord, guild: FakeGuild | None, channel: FakeChannel, user: FakeUser, app_permissions: PermissionsLike
) -> tuple[JSON, int]:
    """Where and by whom an interaction happens: guild/member or DM/user fields, and the user's permissions.

    Where the bot is not (a server without it, a group DM, a DM between people) the interaction comes through
    the user's install of the app: context 0 or 2 and ``authorizing_integration_owners`` {"1": user}."""
    common: JSON = {"channel_id": str(channel.id), "entitlements": [], "entitlement_sku_ids": []}
    if guild is None and channel.id in fake.private_channels:
        app_perms = USER_INSTALL_APP_PERMISSIONS if app_permissions is None else permissions_value(app_permissions)
        return common | {
            "user": user.payload(),
            "channel": channel.payload() | {"permissions": str(DEFAULT_EVERYONE_PERMISSIONS)},
            "app_permissions": str(app_perms),
            "context": CONTEXT_PRIVATE_CHANNEL,
            "authorizing_integration_owners": {"1": str(user.id)},
        }, ALL_PERMISSIONS
    if guild is None:
        app_perms = DEFAULT_BOT_PERMISSIONS if app_permissions is None else permissions_value(app_permissions)
        return common | {
            "user": user.payload(),
            "channel": channel.payload() | {"permissions": str(DEFAULT_EVERYONE_PERMISSIONS)},
            "app_permissions": str(app_perms),
            "context": 1,  # BOT_DM
            "authorizing_integration_owners": {"0": "0"},
        }, ALL_PERMISSIONS
    if channel.guild_id != guild.id:
        raise ValueError(f"channel {channel.id} is not in guild {guild.id}")
    member = guild.members.get(user.id)
    if member is None:
        raise ValueError(f"user {user.id} is not a member of guild {guild.id}")
    perms = guild.permissions_for(user.id, channel)
    bot_here = fake.bot.id in guild.members
    default_app_perms = fake.bot_permissions(channel) if bot_here else USER_INSTALL_APP_PERMISSIONS
    app_perms = default_app_perms if app_permissions is None else permissions_value(app_permissions)
    owners = {"0": str(guild.id)} if bot_here else {"1": str(user.id)}
    return common | {
        "guild_id": str(guild.id),
        "guild": {"id": str(guild.id), "locale": guild.locale, "features": []},
        "guild_locale": guild.locale,
        "member": member.payload(permissions=perms),
        "channel": channel.payload() | {"permissions": str(perms)},
        "app_permissions": str(app_perms),
        "context": CONTEXT_GUILD,
        "authorizing_integration_owners": owners,
    }, perms


def find_command(commands: Sequence[JSON], name: str, command_type: int) -> JSON | None:
    for cmd in commands:
        if cmd["name"] == name and int(cmd.get("type", 1)) == command_type:
            return cmd
    return None


def _check_range(opt: JSON, value: Any) -> None:
    name = opt["name"]
    if "choices" in opt and opt["choices"] and value not in [c["value"] for c in opt["choices"]]:
        raise ValueError(f"option {name!r}: {value!r} is not one of the command's choices")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if opt.get("min_value") is not None and value < opt["min_value"]:
            raise ValueError(f"option {name!r}: {value} < min_value {opt['min_value']}")
        if opt.get("max_value") is not None and value > opt["max_value"]:
            raise ValueError(f"option {name!r}: {value} > max_value {opt['max_value']}")
    if isinstance(value, str):
        if opt.get("min_length") is not None and len(value) < opt["min_length"]:
            raise ValueError(f"option {name!r}: shorter than min_length {opt['min_length']}")
        if opt.get("max_length") is not None and len(value) > opt["max_length"]:
            raise ValueError(f"option {name!r}: longer than max_length {opt['max_length']}")


class OptionBuilder:
    """Builds ``data.options`` + ``data.resolved`` from plain values, typed by the synced command."""

    def __init__(self, fake: FakeDiscord, guild_id: int | None) -> None:
        self.fake = fake
        self.guild_id = guild_id
        self.resolved: JSON = {}

    def build(
        self, command: JSON, path: Sequence[str], values: Mapping[str, Any], *, focused: str | None = None
    ) -> list[JSON]:
        definitions: list[JSON] = command.get("options") or []
        nested: list[tuple[int, str]] = []
        for part in path:
            opt = next((o for o in definitions if o["name"] == part and o["type"] in (1, 2)), None)
            if opt is None:
                raise ValueError(f"/{command['name']} has no subcommand (group) {part!r}")
            nested.append((opt["type"], part))
            definitions = opt.get("options") or []
        if any(o["type"] in (OPTION_SUB_COMMAND, OPTION_SUB_COMMAND_GROUP) for o in definitions):
            raise ValueError(f"/{command['name']} {' '.join(path)} needs a subcommand")
        leaf = self._leaf_options(definitions, values, focused=focused)
        for opt_type, name in reversed(nested):
            leaf = [{"type": opt_type, "name": name, "options": leaf}]
        return leaf

    def _leaf_options(self, definitions: list[JSON], values: Mapping[str, Any], *, focused: str | None) -> list[JSON]:
        by_name = {o["name"]: o for o in definitions}
        unknown = set(values) - set(by_name)
        if unknown:
            raise ValueError(f"unknown option(s) {sorted(unknown)}; the command has {sorted(by_name)}")
        out: list[JSON] = []
        for opt in definitions:
            name = opt["name"]
            if name not in values:
                if opt.get("required") and focused is None:
                    raise ValueError(f"required option {name!r} missing")
                continue
            if name == focused:
                # autocomplete sends what the user has typed so far, always as a string
                out.append({"type": opt["type"], "name": name, "value": str(values[name]), "focused": True})
                continue
            out.append({"type": opt["type"], "name": name, "value": self._convert(opt, values[name])})
        return out

    def _convert(self, opt: JSON, value: Any) -> Any:
        t = opt["type"]
        name = opt["name"]
        if t == OPTION_STRING:
            if not isinstance(value, str):
                raise TypeError(f"option {name!r} is a string option, got {value!r}")
        elif t == OPTION_INTEGER:
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"option {name!r} is an integer option, got {value!r}")
        elif t == OPTION_BOOLEAN:
            if not isinstance(value, bool):
                raise TypeError(f"option {name!r} is a boolean option, got {value!r}")
        elif t == OPTION_NUMBER:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"option {name!r} is a number option, got {value!r}")
        elif t == OPTION_ATTACHMENT:
            return self.attach(value)
        elif t in (OPTION_USER, OPTION_MENTIONABLE):
            return self._user_or_role(opt, value)
        elif t == OPTION_CHANNEL:
            channel = self.fake.channels[int(getattr(value, "id", value))]
            self.resolved.setdefault("channels", {})[str(channel.id)] = channel.payload() | {
                "permissions": str(ALL_PERMISSIONS)
            }
            return str(channel.id)
        elif t == OPTION_ROLE:
            return self._role(int(getattr(value, "id", value)))
        _check_range(opt, value)
        return value

    def attach(self, value: Any) -> str:
        """Put an uploaded attachment (payload, StoredAttachment or id) into ``resolved``; returns its id."""
        if isinstance(value, StoredAttachment):
            att = value
        elif isinstance(value, Mapping):
            att = self.fake.uploads[int(value["id"])]
        else:
            att = self.fake.uploads[int(value)]
        self.resolved.setdefault("attachments", {})[str(att.id)] = att.payload()
        return str(att.id)

    def user(self, target: int) -> str:
        """Put a user (and their member, in a guild) into ``resolved``; returns the id."""
        user = self.fake.users[target]
        self.resolved.setdefault("users", {})[str(target)] = user.payload()
        guild = self.fake.guilds.get(self.guild_id) if self.guild_id else None
        if guild is not None and target in guild.members:
            member = guild.members[target].payload(with_user=False, permissions=guild.permissions_for(target))
            self.resolved.setdefault("members", {})[str(target)] = member
        return str(target)

    def _user_or_role(self, opt: JSON, value: Any) -> str:
        target = int(getattr(value, "id", value))
        if target in self.fake.users:
            return self.user(target)
        if opt["type"] == OPTION_MENTIONABLE:
            return self._role(target)
        raise ValueError(f"option {opt['name']!r}: unknown user {target}")

    def _role(self, role_id: int) -> str:
        guild = self.fake.guilds.get(self.guild_id) if self.guild_id else None
        if guild is None or role_id not in guild.roles:
            raise ValueError(f"unknown role {role_id}")
        self.resolved.setdefault("roles", {})[str(role_id)] = guild.roles[role_id].payload()
        return str(role_id)


def find_component(components: list[JSON], custom_id: str) -> JSON | None:
    """Depth-first search through action rows, containers, sections and labels."""
    for comp in components:
        if comp.get("custom_id") == custom_id:
            return comp
        for key in ("components", "accessory", "component"):
            child = comp.get(key)
            children = [child] if isinstance(child, dict) else child if isinstance(child, list) else []
            found = find_component(children, custom_id)
            if found is not None:
                return found
    return None


FILE_UPLOAD = 19


def modal_submission(components: list[JSON], values: Mapping[str, Any]) -> list[JSON]:
    """The ``data.components`` of a modal submit, mirroring the modal's layout with the user's values."""
    out: list[JSON] = []
    for comp in components:
        ctype = comp.get("type")
        if ctype == 1:
            out.append({"type": 1, "components": modal_submission(comp.get("components", []), values)})
        elif ctype == 18:
            inner = modal_submission([comp["component"]], values)
            out.append({"type": 18, "id": comp.get("id", 0), "component": inner[0]})
        elif ctype == 10:
            out.append({"type": 10, "id": comp.get("id", 0), "content": comp.get("content", "")})
        elif ctype == FILE_UPLOAD:  # the files' ids; their attachments go into data.resolved (submit_modal)
            chosen = values.get(comp["custom_id"], [])
            files = [str(f["id"]) if isinstance(f, Mapping) else str(f) for f in chosen]
            out.append({"type": ctype, "id": comp.get("id", 0), "custom_id": comp["custom_id"], "values": files})
        elif "custom_id" in comp:
            custom_id = comp["custom_id"]
            value = values.get(custom_id, comp.get("value", ""))
            item: JSON = {"type": ctype, "id": comp.get("id", 0), "custom_id": custom_id}
            if ctype == 4:
                item["value"] = value
            else:
                item["values"] = list(value) if isinstance(value, list | tuple) else [value]
            out.append(item)
    return out
