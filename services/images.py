"""Recognising image bytes by their signature, and data: URIs."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

# (content type, file extension) by leading bytes; the declared Content-Type is not trusted.
_SIGNATURES: tuple[tuple[bytes, int, tuple[str, str]], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, ("image/png", "png")),
    (b"\xff\xd8\xff", 0, ("image/jpeg", "jpg")),
    (b"GIF87a", 0, ("image/gif", "gif")),
    (b"GIF89a", 0, ("image/gif", "gif")),
    (b"WEBP", 8, ("image/webp", "webp")),
)


@dataclass(frozen=True)
class ImageFile:
    data: bytes
    content_type: str
    extension: str

    @property
    def size(self) -> int:
        return len(self.data)


def sniff(data: bytes) -> tuple[str, str] | None:
    """(content type, extension) when `data` starts like a PNG, JPEG, GIF or WebP file."""
    for magic, offset, kind in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic and (offset == 0 or data[:4] == b"RIFF"):
            return kind
    return None


def as_image(data: bytes, what: str) -> ImageFile:
    kind = sniff(data)
    if kind is None:
        raise ValueError(f"{what} is not a PNG, JPEG, GIF or WebP image")
    return ImageFile(data, *kind)


_DATA_URI = re.compile(r"data:([\w/+.-]*)((?:;[\w=.-]+)*?)(;base64)?,(.*)", re.S)


def decode_data_uri(uri: str, max_bytes: int) -> bytes:
    match = _DATA_URI.fullmatch(uri.strip())
    if match is None or not match[3]:
        raise ValueError("not a base64 data: URI")
    payload = match[4]
    if len(payload) * 3 // 4 > max_bytes:
        raise ValueError(f"larger than {max_bytes // 1024} KiB")
    try:
        return base64.b64decode(payload, validate=False)
    except (binascii.Error, ValueError):
        raise ValueError("broken base64 in data: URI") from None


def encode_data_uri(image: ImageFile) -> str:
    return f"data:{image.content_type};base64,{base64.b64encode(image.data).decode('ascii')}"
