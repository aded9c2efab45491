"""An image's width and height read from the first bytes of its file (PNG, GIF, WebP, JPEG), without Pillow.

Settling a job's price needs the size of every output; Pillow opens a WebP file by decoding it, which cost more
CPU per job than the rest of the settlement. None when the header does not say (the caller asks Pillow then).
"""

from __future__ import annotations

import struct

Size = tuple[int, int]
HEAD_BYTES = 64 * 1024  # a JPEG's size marker comes after its metadata, which is rarely larger
# JPEG markers that carry the frame's size (start of frame), all but DHT (C4), JPG (C8) and DAC (CC).
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def header_size(head: bytes) -> Size | None:
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and len(head) >= 24:
        return _positive(*struct.unpack(">II", head[16:24]))
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return _positive(*struct.unpack("<HH", head[6:10]))
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp(head)
    if head[:3] == b"\xff\xd8\xff":
        return _jpeg(head)
    return None


def _webp(head: bytes) -> Size | None:
    chunk = head[12:16]
    if chunk == b"VP8X" and len(head) >= 30:
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return _positive(width, height)
    if chunk == b"VP8L" and len(head) >= 25 and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return _positive((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8 " and len(head) >= 30 and head[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", head[26:30])
        return _positive(width & 0x3FFF, height & 0x3FFF)
    return None


def _jpeg(head: bytes) -> Size | None:
    at = 2
    while at + 9 <= len(head):
        if head[at] != 0xFF:
            return None
        marker = head[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            at += 2
            continue
        length = int.from_bytes(head[at + 2 : at + 4], "big")
        if marker in _SOF:
            height, width = struct.unpack(">HH", head[at + 5 : at + 9])
            return _positive(width, height)
        if marker == 0xDA or length < 2:  # the image data starts: no size before it
            return None
        at += 2 + length
    return None


def _positive(width: int, height: int) -> Size | None:
    return (width, height) if width > 0 and height > 0 else None
