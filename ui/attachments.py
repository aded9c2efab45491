"""The images of a Discord message, as plain descriptions the services can check and fetch."""

from __future__ import annotations

import discord

from services.errors import BadInput
from services.rules.input_images import ACCEPTED_TYPES, ImageRef
from services.text import _

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")


def image_refs(message: discord.Message | None) -> list[ImageRef]:
    """The message's attachments that look like images, in their order (checked again once downloaded).

    A clicked message comes in the interaction's payload with freshly signed attachment links, so these
    are the images the user saw, by links that have not expired.
    """
    if message is None:
        return []
    return [
        ImageRef(a.url, a.filename, a.size, a.content_type)
        for a in message.attachments
        if (a.content_type or "").split(";")[0] in ACCEPTED_TYPES or a.filename.lower().endswith(IMAGE_SUFFIXES)
    ]


def image_at(images: list[ImageRef], position: int, *, doing: str) -> ImageRef:
    """Image number `position` (1-based, as the buttons count) of a message, or BadInput saying it is not there."""
    if not images:
        if doing == "vary":
            raise BadInput(_("That message has no image to vary: attach a PNG, JPEG, GIF or WebP."))
        raise BadInput(_("That message has no image to edit: attach a PNG, JPEG, GIF or WebP."))
    if not 1 <= position <= len(images):
        if doing == "vary":
            raise BadInput(
                _("Image {position} is not in that message any more, so I can't vary it.", position=position)
            )
        raise BadInput(_("Image {position} is not in that message any more, so I can't edit it.", position=position))
    return images[position - 1]
