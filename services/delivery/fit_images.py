"""Make images fit a per-file upload limit: re-encode them, then scale them down (Pillow).

Plain bytes in and out, no Discord types. CPU-heavy: call it off the event loop (`asyncio.to_thread`).
Every result is JPEG, or WebP when the image has transparency: both are shown inline by Discord.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from services.cometapi.files import ImageFile
from services.text import Text, _

# FLUX outputs are at most ~4 megapixels. A header claiming far more is refused before any pixel is decoded:
# a small file can expand to gigabytes (a decompression bomb). Pillow's own cap is set to it as well (Pillow
# raises past twice the cap, when it opens a file, and only warns below that: hence the check in _decode).
MAX_PIXELS = 16_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
FORMATS = ("PNG", "JPEG", "WEBP", "GIF")  # what the downloads accept (services/cometapi/files.py `sniff`)
QUALITIES = (90, 80)  # tried in turn on the full-size image
SCALED_QUALITY = 80
SCALE_ATTEMPTS = 8
MIN_SIDE = 64  # smaller than this is no longer worth posting


@dataclass(frozen=True)
class Fitted:
    images: list[ImageFile | None]  # in the given order; None where an image could not be made to fit
    notes: list[Text]  # what was changed, for the user, e.g. "image 2 was re-encoded as JPEG (14.1 MB → 3.2 MB)"


class _Unreadable(Exception):
    def __init__(self, text: Text) -> None:
        super().__init__(str(text))
        self.text = text


def fit_images(images: Sequence[ImageFile], limit: int) -> Fitted:
    """Each image within `limit` bytes: untouched if it already is, else re-encoded, then scaled down."""
    out: list[ImageFile | None] = []
    notes: list[Text] = []
    for number, image in enumerate(images, start=1):
        fitted, note = fit_image(image, limit, number)
        out.append(fitted)
        if note:
            notes.append(note)
    return Fitted(out, notes)


def fit_image(image: ImageFile, limit: int, number: int = 1) -> tuple[ImageFile | None, Text | None]:
    if image.size <= limit:
        return image, None
    try:
        decoded = _decode(image.data)
    except _Unreadable as exc:
        return None, _(
            "image {number} ({size}) is over the upload limit and {reason}, so it was left out",
            number=number,
            size=_size(image.size),
            reason=exc.text,
        )
    with decoded:
        kind = "WEBP" if _has_alpha(decoded) else "JPEG"
        picture = decoded.convert("RGBA" if kind == "WEBP" else "RGB")
    with picture:
        for quality in QUALITIES:
            data = _encode(picture, kind, quality)
            if len(data) <= limit:
                change = _change(image, data)
                return _result(data, kind), _(
                    "image {number} was re-encoded as {kind} ({change})", number=number, kind=kind, change=change
                )
        width, height = picture.size
        for _attempt in range(SCALE_ATTEMPTS):
            # The encoded size goes about with the pixel count; aim a little under the limit.
            factor = min(math.sqrt(limit / len(data)) * 0.95, 0.9)
            width, height = round(width * factor), round(height * factor)
            if min(width, height) < MIN_SIDE:
                break
            with picture.resize((width, height), Image.Resampling.LANCZOS) as smaller:
                data = _encode(smaller, kind, SCALED_QUALITY)
            if len(data) <= limit:
                note = _(
                    "image {number} was re-encoded as {kind} and scaled down to {width}×{height} ({change})",
                    number=number,
                    kind=kind,
                    width=width,
                    height=height,
                    change=_change(image, data),
                )
                return _result(data, kind), note
    return None, _(
        "image {number} ({size}) could not be made small enough to upload, so it was left out",
        number=number,
        size=_size(image.size),
    )


def _decode(data: bytes) -> Image.Image:
    try:
        picture = Image.open(io.BytesIO(data), formats=FORMATS)  # reads the header only
    except Image.DecompressionBombError:
        raise _Unreadable(_("is too large to open")) from None
    except Exception:  # whatever a decoder raises on a broken file (OSError, SyntaxError, EOFError...)
        raise _Unreadable(_("could not be read")) from None
    if picture.width * picture.height > MAX_PIXELS:
        picture.close()
        raise _Unreadable(
            _("is too large to open ({width}×{height} pixels)", width=picture.width, height=picture.height)
        )
    try:
        picture.load()  # decodes now, so a broken file fails here rather than half-way through an encode
    except Exception:
        picture.close()
        raise _Unreadable(_("could not be read")) from None
    return picture


def _has_alpha(picture: Image.Image) -> bool:
    if picture.mode in ("RGBA", "LA", "PA"):
        return picture.getextrema()[-1][0] < 255  # type: ignore[index]  # an alpha band that is all opaque is none
    return picture.mode == "P" and "transparency" in picture.info


def _encode(picture: Image.Image, kind: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    if kind == "JPEG":
        picture.save(buffer, "JPEG", quality=quality, optimize=True)
    else:
        picture.save(buffer, "WEBP", quality=quality, method=4)
    return buffer.getvalue()


def _result(data: bytes, kind: str) -> ImageFile:
    if kind == "JPEG":
        return ImageFile(data, "image/jpeg", "jpg")
    return ImageFile(data, "image/webp", "webp")


def _change(before: ImageFile, after: bytes) -> str:
    return f"{_size(before.size)} → {_size(len(after))}"


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 1_000_000 else f"{max(n // 1000, 1)} kB"
