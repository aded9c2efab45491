"""Messages of the fake Discord: creation and edits with Discord's rules, attachments, gateway events.

With the IS_COMPONENTS_V2 flag a message is laid out by its components alone: no `content`, no `embeds`;
its attachments are seen only through components (`attachment://NAME`), so each one named must exist and
each file uploaded must be named; at most 40 components in all and 5 action rows. Without the flag the
layout components (container, text display, media gallery...) are refused. The flag can be set by an edit
(a deferred reply's first one) but never removed.

Shared by the REST routes, the interaction callbacks and webhooks, and the user actions tests drive.
"""

from __future__ import annotations

import mimetypes
import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from fakes.common import UploadedFile
from fakes.discord_components import (
    ACTION_ROW,
    ATTACHMENT_SCHEME,
    LAYOUT_TYPES,
    MAX_COMPONENTS,
    MAX_ROWS,
    media_urls,
    walk,
)
from fakes.discord_models import (
    ALL_PERMISSIONS,
    FLAG_COMPONENTS_V2,
    FLAG_LOADING,
    FLAG_SUPPRESS_EMBEDS,
    FLAG_SUPPRESS_NOTIFICATIONS,
    JSON,
    MAX_ATTACHMENTS,
    MAX_CONTENT,
    MAX_EMBEDS,
    NONCE_WINDOW,
    DiscordHTTPError,
    FakeChannel,
    FakeUser,
    MessageEdit,
    StoredAttachment,
    StoredMessage,
    emoji_payload,
    invalid_form,
    safe_filename,
    utc_iso,
)
from fakes.discord_openapi import Violation

if TYPE_CHECKING:
    from fakes.discord import FakeDiscord

_MENTION = re.compile(r"<@!?(\d+)>")
_LEGACY_FIELD = "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2"


def layout_problem(
    v2: bool, body: JSON, components: list[JSON], attachments: list[StoredAttachment], new: list[StoredAttachment]
) -> tuple[str, str, str] | None:
    """What Discord refuses in the components of a message as it will be after this request: (field, code,
    message), or None."""
    every = list(walk(components))
    if not v2:
        if any(c.get("type") in LAYOUT_TYPES for c in every):
            return "components", "COMPONENT_TYPE_INVALID", "Layout components need IS_COMPONENTS_V2"
        return None
    for legacy in ("content", "embeds", "sticker_ids", "poll"):
        if body.get(legacy):
            return legacy, _LEGACY_FIELD, f"The '{legacy}' field cannot be used when using IS_COMPONENTS_V2"
    if len(every) > MAX_COMPONENTS:
        return "components", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_COMPONENTS} or fewer in total."
    if sum(c.get("type") == ACTION_ROW for c in every) > MAX_ROWS:
        return "components", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_ROWS} or fewer action rows."
    names = {a.filename for a in attachments}
    named = {url.removeprefix(ATTACHMENT_SCHEME) for url in media_urls(components) if url.startswith(ATTACHMENT_SCHEME)}
    if unknown := sorted(named - names):
        return "components", "UNFURLED_MEDIA_ITEM_ATTACHMENT_NOT_FOUND", f"Unknown attachment {unknown[0]}"
    if unshown := [a.filename for a in new if a.filename not in named]:
        return "attachments", "MESSAGE_ATTACHMENT_NOT_REFERENCED", f"{unshown[0]} is not shown by any component"
    return None


class MessageStore:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake

    def bot_permissions(self, channel: FakeChannel) -> int:
        if channel.id in self.fake.private_channels:
            return 0  # a group DM or another person's DM: the bot is not in it
        if channel.guild_id is None:
            return ALL_PERMISSIONS
        return self.fake.guilds[channel.guild_id].permissions_for(self.fake.bot.id, channel)

    def store_upload(self, file: UploadedFile, channel_id: int, *, filename: str | None = None) -> StoredAttachment:
        att_id = self.fake._snowflakes.next()
        name = safe_filename(filename or file.filename)
        ctype = mimetypes.guess_type(name)[0] or file.content_type or "application/octet-stream"
        url = self.fake.cdn_url(f"/attachments/{channel_id}/{att_id}/{quote(name)}")
        att = StoredAttachment(att_id, name, file.data, ctype, url, url)
        self.fake.attachments[att_id] = att
        return att

    def apply_attachments(
        self, body: JSON, files: list[UploadedFile], existing: list[StoredAttachment], channel_id: int
    ) -> list[StoredAttachment] | None:
        """The attachment list after a create/edit; None when the request leaves it unchanged.

        ``attachments`` lists what the message keeps: ids of existing attachments, and for new uploads the
        N of their ``files[N]`` part. Files not listed are appended, as without an ``attachments`` field.
        """
        by_index = {f.index if f.index is not None else i: f for i, f in enumerate(files)}
        spec = body.get("attachments")
        if spec is None and not files:
            return None
        result: list[StoredAttachment] = [] if spec is not None else list(existing)
        used: set[int] = set()
        current = {a.id: a for a in existing}
        for n, entry in enumerate(spec or []):
            try:
                att_id = int(entry["id"])
            except (KeyError, TypeError, ValueError):
                raise invalid_form(f"attachments.{n}.id", "BASE_TYPE_REQUIRED", "This field is required") from None
            if att_id in current:
                result.append(current[att_id])
            elif att_id in by_index:
                used.add(att_id)
                att = self.store_upload(by_index[att_id], channel_id, filename=entry.get("filename"))
                att.description = entry.get("description")
                result.append(att)
            else:
                raise invalid_form(f"attachments.{n}.id", "ATTACHMENT_NOT_FOUND", "Unknown attachment")
        result.extend(self.store_upload(f, channel_id) for i, f in by_index.items() if i not in used)
        if len(result) > MAX_ATTACHMENTS:
            raise invalid_form("attachments", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        return result

    def _check_layout(
        self,
        route: str,
        v2: bool,
        body: JSON,
        components: list[JSON],
        attachments: list[StoredAttachment],
        new: list[StoredAttachment],
    ) -> None:
        """Refuse, as Discord would, components that break the layout rules, and keep it for the test to fail on."""
        problem = layout_problem(v2, body, components, attachments, new)
        if problem is not None:
            where, code, message = problem
            method, _, path = route.partition(" ")
            self.fake.spec_violations.append(Violation(method, path, path, "components layout", where, code, message))
            raise invalid_form(where, code, message)

    def _check_upload_size(self, files: list[UploadedFile], limit: int) -> None:
        if sum(len(f.data) for f in files) > limit:
            raise DiscordHTTPError(413, 40005, "Request entity too large")

    def _validate_content(self, body: JSON) -> None:
        content = body.get("content")
        if isinstance(content, str) and len(content) > MAX_CONTENT:
            raise invalid_form("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
        if len(body.get("embeds") or []) > MAX_EMBEDS:
            raise invalid_form("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")

    def create_message(
        self,
        channel: FakeChannel,
        author: FakeUser,
        body: JSON,
        files: list[UploadedFile],
        *,
        upload_limit: int,
        flags_mask: int = FLAG_SUPPRESS_EMBEDS | FLAG_SUPPRESS_NOTIFICATIONS | FLAG_COMPONENTS_V2,
        type: int = 0,
        allow_empty: bool = False,
        **extra: Any,
    ) -> StoredMessage:
        self._validate_content(body)
        self._check_upload_size(files, upload_limit)
        embeds = body.get("embeds") or ([body["embed"]] if body.get("embed") else [])
        attachments = self.apply_attachments(body, files, [], channel.id) or []
        content = str(body.get("content") or "")
        components = body.get("components") or []
        flags = int(body.get("flags") or 0) & flags_mask
        self._check_layout("POST message", bool(flags & FLAG_COMPONENTS_V2), body, components, attachments, attachments)
        if not (allow_empty or content or embeds or attachments or components or body.get("sticker_ids")):
            raise DiscordHTTPError(400, 50006, "Cannot send an empty message")
        ref = body.get("message_reference")
        if ref:
            ref_id = int(ref["message_id"])
            target = self.fake.messages.get(ref_id)
            if (target is None or target.deleted) and ref.get("fail_if_not_exists", True):
                raise invalid_form("message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")
            ref = {"type": 0, "message_id": str(ref_id), "channel_id": str(ref.get("channel_id") or channel.id)}
            if channel.guild_id is not None:
                ref["guild_id"] = str(channel.guild_id)
            type = 19 if type == 0 else type
        mentions = [self.fake.users[int(u)] for u in _MENTION.findall(content) if int(u) in self.fake.users]
        msg = StoredMessage(
            id=self.fake._snowflakes.next(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=author,
            content=content,
            embeds=list(embeds),
            components=list(components),
            attachments=attachments,
            flags=flags,
            type=type,
            tts=bool(body.get("tts")),
            message_reference=ref or None,
            mentions=mentions,
            nonce=None if body.get("nonce") is None else str(body["nonce"]),
            **extra,
        )
        self.fake.messages[msg.id] = msg
        channel.last_message_id = msg.id
        return msg

    def by_nonce(self, channel: FakeChannel, author: FakeUser, body: JSON) -> StoredMessage | None:
        """With ``enforce_nonce``, the message this author already created here with the same nonce, if recent:
        Discord returns it instead of creating another."""
        nonce = body.get("nonce")
        if not body.get("enforce_nonce") or nonce is None:
            return None
        since = time.monotonic() - NONCE_WINDOW
        for msg in self.fake.messages.values():
            if (msg.channel_id, msg.author.id, msg.nonce) == (
                channel.id,
                author.id,
                str(nonce),
            ) and msg.created_at > since:
                return msg
        return None

    def edit_message(
        self, msg: StoredMessage, body: JSON, files: list[UploadedFile], *, route: str, upload_limit: int
    ) -> StoredMessage:
        self._validate_content(body)
        self._check_upload_size(files, upload_limit)
        new_list = self.apply_attachments(body, files, msg.attachments, msg.channel_id)
        content = msg.content if "content" not in body else str(body["content"] or "")
        embeds = msg.embeds
        if "embeds" in body:
            embeds = list(body["embeds"] or [])
        elif "embed" in body:
            embeds = [body["embed"]] if body["embed"] else []
        components = msg.components if "components" not in body else list(body["components"] or [])
        attachments = msg.attachments if new_list is None else new_list
        old_ids = {a.id for a in msg.attachments}
        flags = msg.flags
        if body.get("flags") is not None:
            asked = int(body["flags"])
            if flags & FLAG_COMPONENTS_V2 and not asked & FLAG_COMPONENTS_V2:
                raise invalid_form("flags", "MESSAGE_CANNOT_REMOVE_COMPONENTS_V2_FLAG", "The flag can't be removed")
            # only SUPPRESS_EMBEDS can be changed by an edit, and V2 set; ephemeral stays what it was
            flags = (flags & ~FLAG_SUPPRESS_EMBEDS) | (asked & (FLAG_SUPPRESS_EMBEDS | FLAG_COMPONENTS_V2))
        v2 = bool(flags & FLAG_COMPONENTS_V2)
        if v2 and not msg.flags & FLAG_COMPONENTS_V2:
            # Made a layout message by this edit, it must clear what it showed the old way (content: null, ...);
            # legacy fields the edit itself sends are refused by the layout check below.
            given = {"content": "content" in body, "embeds": "embeds" in body or "embed" in body}
            kept = [name for name, old in (("content", msg.content), ("embeds", msg.embeds)) if old and not given[name]]
            if kept:
                raise invalid_form(
                    kept[0], _LEGACY_FIELD, f"The '{kept[0]}' field cannot be used when using IS_COMPONENTS_V2"
                )
        if v2:  # the legacy fields go: only components show
            content, embeds = "", []
        self._check_layout(route, v2, body, components, attachments, [a for a in attachments if a.id not in old_ids])
        if not (content or embeds or attachments or components) and not msg.loading:
            raise DiscordHTTPError(400, 50006, "Cannot send an empty message")
        msg.content, msg.embeds, msg.components, msg.attachments = content, embeds, components, attachments
        msg.flags = flags
        msg.flags &= ~FLAG_LOADING
        msg.edited_timestamp = utc_iso()
        msg.mentions = [self.fake.users[int(u)] for u in _MENTION.findall(content) if int(u) in self.fake.users]
        msg.edits.append(
            MessageEdit(
                at=time.monotonic(),
                route=route,
                body=body,
                new_attachments=[a for a in attachments if a.id not in old_ids],
                content=msg.content,
                embeds=list(msg.embeds),
                components=list(msg.components),
                attachments=list(msg.attachments),
                flags=msg.flags,
            )
        )
        return msg

    def message_payload(self, msg: StoredMessage) -> JSON:
        ref_id = int(msg.message_reference["message_id"]) if msg.message_reference else None
        referenced = self.fake.messages.get(ref_id) if ref_id else None
        return msg.payload(me_id=self.fake.bot.id, referenced=referenced)

    def dispatch_message(self, event: str, msg: StoredMessage) -> None:
        if msg.ephemeral:
            return  # ephemeral messages never reach the gateway
        data = self.message_payload(msg)
        if msg.guild_id is not None:
            member = self.fake.guilds[msg.guild_id].members.get(msg.author.id)
            if member is not None and msg.webhook_id is None:
                data["member"] = member.payload(with_user=False)
        self.fake._gateway.dispatch(event, data, guild_id=msg.guild_id)

    def delete_message(self, msg: StoredMessage) -> None:
        msg.deleted = True
        msg.deleted_at = time.monotonic()
        if not msg.ephemeral:
            data = {"id": str(msg.id), "channel_id": str(msg.channel_id)}
            if msg.guild_id is not None:
                data["guild_id"] = str(msg.guild_id)
            self.fake._gateway.dispatch("MESSAGE_DELETE", data, guild_id=msg.guild_id)

    def reaction_event(self, msg: StoredMessage, user_id: int, key: str, *, add: bool, burst: bool = False) -> None:
        data: JSON = {
            "user_id": str(user_id),
            "channel_id": str(msg.channel_id),
            "message_id": str(msg.id),
            "emoji": emoji_payload(key),
            "burst": burst,
            "type": 1 if burst else 0,
        }
        if msg.guild_id is not None:
            data["guild_id"] = str(msg.guild_id)
            member = self.fake.guilds[msg.guild_id].members.get(user_id)
            if add and member is not None:
                data["member"] = member.payload()
        if add:
            data["message_author_id"] = str(msg.author.id)
            data["burst_colors"] = []
        self.fake._gateway.dispatch(
            "MESSAGE_REACTION_ADD" if add else "MESSAGE_REACTION_REMOVE", data, guild_id=msg.guild_id
        )
