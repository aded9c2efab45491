"""Input images for the models that edit (Kontext): checked from their description, then fetched and checked.

How a job keeps and sends them (a link or the stored bytes): services/jobs/input_refs.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from services.cometapi.files import Downloader, ImageFile
from services.cometapi.image_size import HEAD_BYTES, header_size
from services.errors import BadInput, DownloadError
from services.rules.catalogue import shown
from services.text import _

ACCEPTED_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})


@dataclass(frozen=True)
class ImageRef:
    """An attachment as the chat platform describes it (nothing platform-specific)."""

    url: str
    filename: str
    size: int
    content_type: str | None


def precheck(refs: list[ImageRef], max_bytes: int) -> None:
    """What can be judged from the description alone, before acknowledging the command."""
    for ref in refs:
        name = shown(ref.filename, 80)
        kind = (ref.content_type or "").split(";")[0].strip().lower()
        if kind not in ACCEPTED_TYPES:
            raise BadInput(_("`{name}` is not an image I can use: attach a PNG, JPEG, GIF or WebP file.", name=name))
        if ref.size > max_bytes:
            raise BadInput(
                _(
                    "`{name}` is {size} MiB; the limit is {limit} MiB.",
                    name=name,
                    size=f"{ref.size / 1048576:.1f}",
                    limit=f"{max_bytes / 1048576:g}",
                )
            )


async def prepare(refs: list[ImageRef], downloader: Downloader) -> list[ImageFile]:
    """Fetch each image (capped) and check it really is one; the files, in the order of `refs`."""
    try:
        return await downloader.fetch_all([ref.url for ref in refs])
    except DownloadError as exc:
        raise BadInput(_("Could not use the attached image: {detail}", detail=exc.text)) from None


Size = tuple[int, int]


def dimensions(file: ImageFile) -> Size | None:
    """(width, height) read from the file's header (no decoding); None if Pillow cannot tell."""
    size = header_size(file.head(HEAD_BYTES))
    if size is not None:
        return size
    try:
        with file.open() as reader, Image.open(reader) as image:
            return image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
