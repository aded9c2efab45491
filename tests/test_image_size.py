"""Image sizes read from file headers agree with Pillow's, for every format and variant the API returns."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from services.cometapi.image_size import HEAD_BYTES, header_size

VARIANTS = [
    ("PNG", "RGB", {}),
    ("PNG", "RGBA", {}),
    ("JPEG", "RGB", {}),
    ("JPEG", "RGB", {"progressive": True}),
    ("JPEG", "RGB", {"exif": b"Exif\x00\x00" + bytes(2000)}),
    ("WEBP", "RGB", {}),
    ("WEBP", "RGBA", {}),
    ("WEBP", "RGB", {"lossless": True}),
    ("WEBP", "RGB", {"exif": b"Exif\x00\x00" + bytes(100)}),
    ("GIF", "RGB", {}),
]


@pytest.mark.parametrize(("kind", "mode", "options"), VARIANTS)
@pytest.mark.parametrize("size", [(1024, 768), (1, 1), (1440, 2560), (16383, 3)])
def test_the_header_says_what_pillow_says(kind: str, mode: str, options: dict[str, Any], size: tuple[int, int]):
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, kind, **options)
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data)) as image:
        assert header_size(data[:HEAD_BYTES]) == image.size == size


@pytest.mark.parametrize(
    "head",
    [b"", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"\xff\xd8\xff\xe0\x00", b"<html>"],
)
def test_a_cut_or_unknown_header_says_nothing(head: bytes):
    assert header_size(head) is None
