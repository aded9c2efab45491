"""The user side of interactions (slash commands, autocomplete, context menus, components, modals),
mixed into FakeDiscord. Each action checks what a real client would (the command was synced, the user may
use it, the button exists and is enabled...), dispatches INTERACTION_CREATE and returns a handle."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from fakes.discord_interactions import (
    APPLICATION_COMMAND,
    AUTOCOMPLETE,
    FILE_UPLOAD,
    MESSAGE_COMPONENT,
    MODAL_SUBMIT,
    InteractionHandle,
    OptionBuilder,
    find_component,
    interaction_context,
    modal_submission,
    user_install,
)
from fakes.discord_models import (
    ADMINISTRATOR,
    DEFAULT_UPLOAD_LIMIT,
    JSON,
    FakeChannel,
    FakeGuild,
    FakeUser,
    IdLike,
    PermissionsLike,
    SnowflakeGenerator,
    StoredAttachment,
    StoredMessage,
    as_id,
    permissions_value,
)
from fakes.discord_rest import new_token

if TYPE_CHECKING:
    from fakes.discord import FakeDiscord
    from fakes.discord_gateway import Gateway
    from fakes.discord_messages import MessageStore


class InteractionActions:
    if TYPE_CHECKING:  # provided by FakeDiscord
        application_id: int
        upload_limit: int
        users: dict[int, FakeUser]
        guilds: dict[int, FakeGuild]
        channels: dict[int, FakeChannel]
        messages: dict[int, StoredMessage]
        uploads: dict[int, StoredAttachment]
        interactions: dict[int, InteractionHandle]
        modals: dict[str, InteractionHandle]
        global_commands: list[JSON]
        guild_commands: dict[int, list[JSON]]
        _by_token: dict[str, InteractionHandle]
        _snowflakes: SnowflakeGenerator
        _gateway: Gateway
        _msgs: MessageStore

        def dm_channel(self, user_id: IdLike) -> FakeChannel: ...
        def command(self, name: str, *, guild_id: IdLike | None = None, command_type: int = 1) -> JSON | None: ...

    @property
    def _fake(self) -> FakeDiscord:
        return cast("FakeDiscord", self)  # this mixin only ever lives in FakeDiscord

    def _resolve_command(self, name: str, command_type: int, guild_id: int | None) -> JSON:
        cmd = self.command(name, guild_id=guild_id, command_type=command_type)
        if cmd is None:
            synced = [c["name"] for c in self.global_commands] + [
                f"{c['name']} (guild)" for c in self.guild_commands.get(guild_id or 0, [])
            ]
            raise LookupError(f"command {name!r} (type {command_type}) was not synced; synced: {synced}")
        return cmd

    # ---- firing interactions -------------------------------------------------------------------

    def _check_command_allowed(
        self, cmd: JSON, guild: FakeGuild | None, user_id: int, perms: int, payload: JSON
    ) -> None:
        context = int(payload["context"])
        contexts = cmd.get("contexts")
        if (contexts is not None and context not in contexts) or (guild is None and cmd.get("dm_permission") is False):
            raise PermissionError(f"/{cmd['name']} is not available in this context ({context})")
        installs = [int(i) for i in cmd.get("integration_types") or [0]]
        needed = 1 if "1" in payload["authorizing_integration_owners"] else 0
        if needed not in installs:
            kind = "a user install" if needed else "a server install"
            raise PermissionError(f"/{cmd['name']} can't be installed as {kind} (integration_types {installs})")
        required = cmd.get("default_member_permissions")
        if guild is not None and required is not None:
            needed = int(required)
            if perms & needed != needed and not perms & ADMINISTRATOR:
                raise PermissionError(f"user {user_id} lacks default_member_permissions of /{cmd['name']}")

    async def _fire(
        self,
        itype: int,
        data: JSON,
        *,
        guild_id: int | None,
        channel_id: int | None,
        user_id: int,
        locale: str = "en-US",
        attachment_size_limit: int | None = None,
        app_permissions: PermissionsLike = None,
        message: StoredMessage | None = None,
        command: JSON | None = None,
        created_ago: float = 0.0,
    ) -> InteractionHandle:
        user = self.users[user_id]
        guild = self.guilds[guild_id] if guild_id is not None else None
        channel = self.channels[channel_id] if channel_id is not None else self.dm_channel(user_id)
        payload, perms = interaction_context(self._fake, guild, channel, user, app_permissions)
        payload["entitlements"] = self._fake.entitlements.for_interaction(user_id, guild_id)
        payload |= {
            "application_id": str(self.application_id),
            "type": itype,
            "data": data,
            "version": 1,
            "locale": locale,
            "attachment_size_limit": attachment_size_limit or self.upload_limit,
        }
        if command is not None:
            self._check_command_allowed(command, guild, user_id, perms, payload)
        if message is not None:
            payload["message"] = self._msgs.message_payload(message)
        iid = self._snowflakes.earlier(created_ago) if created_ago else self._snowflakes.next()
        token = new_token()
        payload |= {"id": str(iid), "token": token}
        handle = InteractionHandle(
            self._fake,
            id=iid,
            token=token,
            type=itype,
            payload=payload,
            guild_id=guild_id,
            channel_id=channel.id,
            user_id=user_id,
            source_message_id=message.id if message is not None else None,
            created_ago=created_ago,
        )
        handle.user_install = user_install(self._fake, guild, channel)
        # Discord makes a user-installed app's replies private where the server turned off "Use External Apps"
        # or the user may not post.
        may_post = bool(perms & permissions_value(["send_messages"]))
        handle.forced_ephemeral = handle.user_install and guild is not None and not (guild.external_apps and may_post)
        self.interactions[iid] = handle
        self._by_token[token] = handle
        self._gateway.dispatch("INTERACTION_CREATE", payload, guild_id=guild_id, required=True)
        await asyncio.sleep(0)
        return handle

    def _command_data(self, cmd: JSON, command_type: int, **extra: Any) -> JSON:
        data: JSON = {"id": cmd["id"], "name": cmd["name"], "type": command_type, **extra}
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        return data

    async def slash_command(
        self,
        guild_id: IdLike | None,
        channel_id: IdLike | None,
        user_id: IdLike,
        name: str,
        options: Mapping[str, Any] | None = None,
        *,
        subcommand: str | None = None,
        attachments: Sequence[JSON | int] = (),
        locale: str = "en-US",
        attachment_size_limit: int = DEFAULT_UPLOAD_LIMIT,
        app_permissions: PermissionsLike = None,
        created_ago: float = 0.0,
    ) -> InteractionHandle:
        """A user runs ``/name [subcommand] options``. ``guild_id=None`` means in a DM with the bot.

        Option values are typed from the synced command; attachment options take add_attachment()'s payload.
        ``name`` may include the subcommand path too: ``"imagine-settings set"``.
        ``created_ago``: the interaction was made that many seconds before it is dispatched (its id says so, and
        its token expires ``token_ttl`` after that): a long stretch of the token's life, without waiting it out.
        The 3 s deadline for the first response still runs from the dispatch.
        """
        parts = name.split()
        path = parts[1:] + (subcommand.split() if subcommand else [])
        gid = None if guild_id is None else as_id(guild_id)
        cmd = self._resolve_command(parts[0], 1, gid)
        builder = OptionBuilder(self._fake, gid)
        opts = builder.build(cmd, path, options or {})
        for att in attachments:
            builder.attach(att)
        data = self._command_data(cmd, 1, options=opts)
        if builder.resolved:
            data["resolved"] = builder.resolved
        return await self._fire(
            APPLICATION_COMMAND,
            data,
            guild_id=gid,
            channel_id=None if channel_id is None else as_id(channel_id),
            user_id=as_id(user_id),
            locale=locale,
            attachment_size_limit=attachment_size_limit,
            app_permissions=app_permissions,
            command=cmd,
            created_ago=created_ago,
        )

    async def autocomplete(
        self,
        guild_id: IdLike | None,
        channel_id: IdLike | None,
        user_id: IdLike,
        name: str,
        options: Mapping[str, Any],
        *,
        focused: str,
        subcommand: str | None = None,
        locale: str = "en-US",
    ) -> InteractionHandle:
        """A user typing into option ``focused``; ``handle.choices`` is what the bot offered."""
        parts = name.split()
        path = parts[1:] + (subcommand.split() if subcommand else [])
        gid = None if guild_id is None else as_id(guild_id)
        cmd = self._resolve_command(parts[0], 1, gid)
        builder = OptionBuilder(self._fake, gid)
        data = self._command_data(cmd, 1, options=builder.build(cmd, path, options, focused=focused))
        return await self._fire(
            AUTOCOMPLETE,
            data,
            guild_id=gid,
            channel_id=None if channel_id is None else as_id(channel_id),
            user_id=as_id(user_id),
            locale=locale,
        )

    async def message_command(
        self, message_id: IdLike, user_id: IdLike, name: str, *, locale: str = "en-US"
    ) -> InteractionHandle:
        """A user runs the message context-menu command ``name`` on a message."""
        msg = self._live_message(as_id(message_id))
        cmd = self._resolve_command(name, 3, msg.guild_id)
        resolved = {"messages": {str(msg.id): self._msgs.message_payload(msg)}}
        data = self._command_data(cmd, 3, target_id=str(msg.id), resolved=resolved)
        return await self._fire(
            APPLICATION_COMMAND,
            data,
            guild_id=msg.guild_id,
            channel_id=msg.channel_id,
            user_id=as_id(user_id),
            locale=locale,
            command=cmd,
        )

    async def user_command(
        self,
        guild_id: IdLike,
        channel_id: IdLike,
        user_id: IdLike,
        name: str,
        target_id: IdLike,
        *,
        locale: str = "en-US",
    ) -> InteractionHandle:
        """A user runs the user context-menu command ``name`` on ``target_id``."""
        gid = as_id(guild_id)
        cmd = self._resolve_command(name, 2, gid)
        builder = OptionBuilder(self._fake, gid)
        target = builder.user(as_id(target_id))
        data = self._command_data(cmd, 2, target_id=target, resolved=builder.resolved)
        return await self._fire(
            APPLICATION_COMMAND,
            data,
            guild_id=gid,
            channel_id=as_id(channel_id),
            user_id=as_id(user_id),
            locale=locale,
            command=cmd,
        )

    def _live_message(self, message_id: int) -> StoredMessage:
        msg = self.messages.get(message_id)
        if msg is None or msg.deleted:
            raise LookupError(f"message {message_id} does not exist (or was deleted)")
        return msg

    async def click_button(
        self, message_id: IdLike, custom_id: str, user_id: IdLike, *, locale: str = "en-US"
    ) -> InteractionHandle:
        """A user clicks a button of a stored message (it must exist and be enabled, as in the client)."""
        return await self._component(message_id, custom_id, user_id, None, locale)

    async def select_menu(
        self, message_id: IdLike, custom_id: str, values: Sequence[str], user_id: IdLike, *, locale: str = "en-US"
    ) -> InteractionHandle:
        """A user picks ``values`` in a select menu of a stored message."""
        return await self._component(message_id, custom_id, user_id, list(values), locale)

    async def _component(
        self, message_id: IdLike, custom_id: str, user_id: IdLike, values: list[str] | None, locale: str
    ) -> InteractionHandle:
        msg = self._live_message(as_id(message_id))
        comp = find_component(msg.components, custom_id)
        if comp is None:
            raise LookupError(f"message {msg.id} has no component {custom_id!r}")
        if comp.get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled")
        is_button = comp.get("type") == 2
        if is_button != (values is None):
            raise TypeError(f"component {custom_id!r} is of type {comp.get('type')}")
        data: JSON = {"custom_id": custom_id, "component_type": comp["type"]}
        if values is not None:
            allowed = {o["value"] for o in comp.get("options", [])}
            if allowed and not set(values) <= allowed:
                raise ValueError(f"{values} are not options of {custom_id!r}")
            if not comp.get("min_values", 1) <= len(values) <= comp.get("max_values", 1):
                raise ValueError(f"{len(values)} values outside min/max of {custom_id!r}")
            data["values"] = values
        return await self._fire(
            MESSAGE_COMPONENT,
            data,
            guild_id=msg.guild_id,
            channel_id=msg.channel_id,
            user_id=as_id(user_id),
            locale=locale,
            message=msg,
        )

    def _uploaded_in_modal(self, asked: list[JSON], sent: list[JSON], origin: InteractionHandle) -> JSON:
        """The attachments of a modal's file uploads, as `data.resolved.attachments`, after the checks the
        Discord client makes before it lets a form go (how many files, each within the upload limit)."""
        resolved: JSON = {}
        limit = int(origin.payload.get("attachment_size_limit") or self.upload_limit)
        for custom_id, upload in _file_uploads(sent).items():
            field = _file_uploads(asked)[custom_id]
            chosen = [self.uploads[int(value)] for value in upload["values"]]
            least = field.get("min_values", 1) if field.get("required", True) else 0
            if not least <= len(chosen) <= field.get("max_values", 1):
                raise ValueError(f"file upload {custom_id!r} takes {least}-{field.get('max_values', 1)} files")
            if any(att.size > limit for att in chosen):
                raise ValueError(f"file upload {custom_id!r}: a file over the {limit} byte upload limit")
            resolved |= {str(att.id): att.payload() for att in chosen}
        return resolved

    async def submit_modal(
        self, modal: str | InteractionHandle, values: Mapping[str, Any], *, user_id: IdLike | None = None
    ) -> InteractionHandle:
        """Submit a modal the bot opened: by custom_id, or by the handle whose response opened it."""
        origin = modal if isinstance(modal, InteractionHandle) else self.modals.get(modal)
        definition = origin.modal if origin is not None else None
        if origin is None or definition is None:
            raise LookupError(f"no open modal {modal!r}; open: {sorted(self.modals)}")
        components = modal_submission(definition["components"], values)
        for comp in _walk(definition["components"]):
            if (
                comp.get("type") == 4
                and comp.get("required", True)
                and not values.get(comp["custom_id"], comp.get("value"))
            ):
                raise ValueError(f"required text input {comp['custom_id']!r} left empty")
        self.modals.pop(definition["custom_id"], None)
        message = self.messages.get(origin.source_message_id) if origin.source_message_id else None
        data: JSON = {"custom_id": definition["custom_id"], "components": components}
        if files := self._uploaded_in_modal(definition["components"], components, origin):
            data["resolved"] = {"attachments": files}
        return await self._fire(
            MODAL_SUBMIT,
            data,
            guild_id=origin.guild_id,
            channel_id=origin.channel_id,
            user_id=as_id(user_id) if user_id is not None else origin.user_id,
            locale=str(origin.payload.get("locale", "en-US")),
            message=message,
        )


def _file_uploads(components: list[JSON]) -> dict[str, JSON]:
    return {c["custom_id"]: c for c in _walk(components) if c.get("type") == FILE_UPLOAD}


def _walk(components: list[JSON]) -> Iterable[JSON]:
    for comp in components:
        yield comp
        inner = comp.get("components")
        if isinstance(inner, list):
            yield from _walk(inner)
        if isinstance(comp.get("component"), dict):
            yield from _walk([comp["component"]])
