"""services/fit_images.py: images over an upload limit re-encoded, then scaled down, with what was done in a note."""

from __future__ import annotations

import io
import random
import re
import struct
import zlib

import pytest
from PIL import Image

from services.cometapi.files import ImageFile, sniff
from services.delivery.fit_images import MAX_PIXELS, fit_images
from tests.helpers import encoded

INLINE = {"image/jpeg", "image/webp"}  # what the fitted images may be (Discord shows both inline)


def png(picture: Image.Image) -> ImageFile:
    return ImageFile(encoded(picture), "image/png", "png")


def noise(width: int, height: int, mode: str = "RGB", seed: int = 1) -> Image.Image:
    bands = len(mode)
    return Image.frombytes(mode, (width, height), random.Random(seed).randbytes(width * height * bands))


def stripes(width: int, height: int) -> Image.Image:
    """Something like a picture: smooth areas with a little grain, which JPEG shrinks well and PNG does not."""
    picture = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    grain = noise(width, height).point(lambda v: v // 16)
    return Image.blend(picture, grain, 0.15)


def decoded(image: ImageFile) -> Image.Image:
    picture = Image.open(io.BytesIO(image.data))
    picture.load()
    return picture


def test_images_within_the_limit_are_left_untouched():
    small = png(stripes(64, 64))
    result = fit_images([small, small], small.size)
    assert result.images[0] is small and result.images[1] is small
    assert result.notes == []


def test_an_image_over_the_limit_is_re_encoded_at_full_size():
    within = png(stripes(32, 32))
    big = png(stripes(800, 600))
    limit = big.size // 3
    result = fit_images([within, big], limit)
    assert result.images[0] is within
    fitted = result.images[1]
    assert fitted is not None and fitted.size <= limit
    assert (fitted.content_type, fitted.extension) == ("image/jpeg", "jpg")
    assert sniff(fitted.data) == ("image/jpeg", "jpg")
    assert decoded(fitted).size == (800, 600)  # the same pixels, only encoded differently
    [note] = map(str, result.notes)
    assert re.fullmatch(r"image 2 was re-encoded as JPEG \(\d+ kB → \d+ kB\)", note), note


def test_an_image_that_re_encoding_cannot_shrink_enough_is_scaled_down():
    big = png(noise(900, 700))  # pure noise: no encoding makes it much smaller
    limit = 60_000
    result = fit_images([big], limit)
    [fitted] = result.images
    assert fitted is not None and fitted.size <= limit
    assert fitted.content_type in INLINE
    width, height = decoded(fitted).size
    assert width < 900 and height < 700
    assert abs(width / height - 900 / 700) < 0.02  # the shape is kept
    [note] = map(str, result.notes)
    assert f"image 1 was re-encoded as JPEG and scaled down to {width}×{height}" in note, note
    assert re.search(r"\(\d\.\d MB → \d+ kB\)$", note), note


def test_transparency_is_kept_as_webp():
    picture = noise(400, 400, "RGBA")
    big = png(picture)
    result = fit_images([big], big.size // 2)
    [fitted] = result.images
    assert fitted is not None and fitted.size <= big.size // 2
    assert (fitted.content_type, fitted.extension) == ("image/webp", "webp")
    out = decoded(fitted)
    assert out.mode == "RGBA"
    alpha_min, _ = out.getextrema()[3]  # type: ignore[misc]
    assert alpha_min < 255, "the transparent pixels were made opaque"
    assert "re-encoded as WEBP" in str(result.notes[0])


def test_an_unreadable_image_over_the_limit_is_left_out_with_a_note():
    broken = ImageFile(b"\x89PNG\r\n\x1a\n" + random.Random(2).randbytes(50_000), "image/png", "png")
    fine = png(stripes(32, 32))
    result = fit_images([fine, broken], 10_000)
    assert result.images == [fine, None]
    [note] = map(str, result.notes)
    assert note == "image 2 (50 kB) is over the upload limit and could not be read, so it was left out"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow warns; the test is the refusal
@pytest.mark.parametrize("side", [5_000, 100_000])  # over the cap, where Pillow only warns; where Pillow refuses
def test_a_decompression_bomb_is_refused_before_its_pixels_are_decoded(side):
    """A few kB claiming side x side pixels (75 MB, or 30 GB, once decoded): refused from its header alone."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    assert side * side > MAX_PIXELS
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 100_000)  # a sliver of the rows: decoding would allocate them all first
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    result = fit_images([ImageFile(bomb, "image/png", "png")], 50)
    assert result.images == [None]
    [note] = map(str, result.notes)
    assert note.startswith("image 1 (1 kB) is over the upload limit and is too large to open"), note
    assert note.endswith(", so it was left out")
