"""Image files for the fake CometAPI, made with the standard library only.

Every format is a real, decodable file:

* PNG: an 8-bit indexed image of diagonal stripes with noisy pixels. The pixel data (the expensive part) is
  made and deflated once per target size and shared; each file gets its own palette (coloured from the
  prediction's seed and prompt) and a fixed-length tEXt chunk naming it, so files differ but cost nothing.
  A private ancillary chunk (``paDd``, ignored by decoders) pads the file to the exact target size.
* JPEG: a 256x256 baseline JFIF whose 8x8 blocks carry only a DC term (a coloured mosaic), padded to the
  target size with COM segments.
* WebP: a 256x256 lossless (VP8L) image in the extended format (VP8X) where each pixel picks one of eight
  colours (3 bits a pixel), padded with an unknown ``FAKE`` chunk; RIFF sizes are even, so an odd target
  comes out one byte larger.

Bodies are lists of parts (bytes, or a block repeated to a length) so huge files stream without being held.
"""

from __future__ import annotations

import hashlib
import random
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from math import isqrt, log2

CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_BLOCK_LEN = 64 * 1024
_PNG_TEXT_LEN = 80
_PNG_MAX_IDAT = 4_000_000  # beyond this the rest of a big PNG is padding
_PNG_FIXED = 8 + 25 + (12 + 768) + (12 + 8 + _PNG_TEXT_LEN) + 12 + 12  # all but IDAT and the padding's data
_SIDE = 256  # JPEG pictures are _SIDE x _SIDE
_WEBP_SIDE = 128  # WebP pictures are _WEBP_SIDE x _WEBP_SIDE (6 KB of pixel data)


@dataclass(frozen=True)
class Repeat:
    """``length`` bytes taken cyclically from ``block``."""

    block: bytes
    length: int


Part = bytes | Repeat


@dataclass(frozen=True)
class FileBody:
    parts: tuple[Part, ...]
    content_type: str

    @property
    def size(self) -> int:
        return sum(len(p) if isinstance(p, bytes) else p.length for p in self.parts)

    def to_bytes(self) -> bytes:
        return b"".join(self.chunks())

    def chunks(self, chunk_size: int = _BLOCK_LEN) -> Iterator[bytes]:
        for part in self.parts:
            if isinstance(part, bytes):
                yield part
            else:
                yield from _repeat_chunks(part, chunk_size)


def _repeat_chunks(rep: Repeat, chunk_size: int) -> Iterator[bytes]:
    """The repeated bytes in pieces of at most ``chunk_size``; the content does not depend on it."""
    left = rep.length
    block = rep.block
    pos = 0
    while left > 0:
        take = min(left, chunk_size, len(block) - pos)
        yield block if take == len(block) else block[pos : pos + take]
        pos = (pos + take) % len(block)
        left -= take


def _colours(material: str) -> list[tuple[int, int, int]]:
    digest = hashlib.sha256(material.encode("utf-8", "replace")).digest()
    return [(digest[3 * i], digest[3 * i + 1], digest[3 * i + 2]) for i in range(8)]


def _clamp(v: int) -> int:
    return 0 if v < 0 else min(v, 255)


# ---------------------------------------------------------------------------------------------- PNG


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@dataclass(frozen=True)
class _PngTemplate:
    width: int
    height: int
    idat: bytes  # the whole IDAT chunk


# ------------------------------------------------------------------------------------------- JPEG

# One DC table: categories 0-11, 4-bit codes equal to the category. One AC table: only EOB, code "0".
_JPEG_DHT = (
    b"\xff\xc4" + struct.pack(">H", 2 + 17 + 12) + b"\x00" + bytes([0, 0, 0, 12] + [0] * 12) + bytes(range(12))
) + (b"\xff\xc4" + struct.pack(">H", 2 + 17 + 1) + b"\x10" + bytes([1] + [0] * 15) + b"\x00")
_JPEG_APP0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
_JPEG_DQT = b"\xff\xdb" + struct.pack(">H", 67) + b"\x00" + bytes([8] * 64)
_JPEG_SOF = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, _SIDE, _SIDE, 3) + b"\x01\x11\x00\x02\x11\x00\x03\x11\x00"
_JPEG_SOS = b"\xff\xda" + struct.pack(">HB", 12, 3) + b"\x01\x00\x02\x00\x03\x00\x00\x3f\x00"
_JPEG_COM_MAX = 65533


def _jpeg_scan(colours: list[tuple[int, int, int]], rng: random.Random) -> bytes:
    acc = 0
    nbits = 0
    preds = [0, 0, 0]
    blocks = _SIDE // 8
    for by in range(blocks):
        for bx in range(blocks):
            r, g, b = colours[((bx + by) // 3) % 8]
            j = rng.randint(-24, 24)
            r, g, b = _clamp(r + j), _clamp(g + j), _clamp(b + j)
            ycc = (
                0.299 * r + 0.587 * g + 0.114 * b,
                128 - 0.168736 * r - 0.331264 * g + 0.5 * b,
                128 + 0.5 * r - 0.418688 * g - 0.081312 * b,
            )
            for c in range(3):
                dc = max(-127, min(127, round(ycc[c]) - 128))
                diff = dc - preds[c]
                preds[c] = dc
                cat = abs(diff).bit_length()
                bits = diff if diff >= 0 else diff + (1 << cat) - 1
                # category (4 bits), magnitude (cat bits), EOB (1 bit "0")
                acc = (((acc << 4) | cat) << cat | bits) << 1
                nbits += 5 + cat
    pad = (-nbits) % 8
    acc = (acc << pad) | ((1 << pad) - 1)
    nbits += pad
    return acc.to_bytes(nbits // 8, "big").replace(b"\xff", b"\xff\x00")


# ------------------------------------------------------------------------------------------- WebP


class _BitWriter:
    """LSB-first bit packing, as VP8L reads it."""

    def __init__(self) -> None:
        self.value = 0
        self.nbits = 0

    def put(self, value: int, nbits: int) -> None:
        self.value |= value << self.nbits
        self.nbits += nbits


def _webp_pixel_bits(rng: random.Random) -> int:
    """Bits of the pixels: per pixel green, red, blue choice bits (alpha and distance codes take none)."""
    out = bytearray()
    acc = 0
    nbits = 0
    for y in range(_WEBP_SIDE):
        for x in range(_WEBP_SIDE):
            code = ((x + y) // 24) % 8
            if rng.random() < 0.25:
                code ^= rng.randrange(8)
            acc |= code << nbits
            nbits += 3
            if nbits >= 24:
                out += (acc & 0xFFFFFF).to_bytes(3, "little")
                acc >>= 24
                nbits -= 24
    return int.from_bytes(bytes(out), "little") | (acc << (8 * len(out)))


def _webp_vp8l(colours: list[tuple[int, int, int]], pixel_bits: int) -> bytes:
    w = _BitWriter()
    w.put(0x2F, 8)
    w.put(_WEBP_SIDE - 1, 14)
    w.put(_WEBP_SIDE - 1, 14)
    w.put(0, 1)  # alpha not used
    w.put(0, 3)  # version
    w.put(0, 1)  # no transform
    w.put(0, 1)  # no colour cache
    w.put(0, 1)  # no meta prefix codes
    lo = colours[0]
    hi = colours[1]
    for channel in (1, 0, 2):  # green, red, blue: simple codes with two 8-bit symbols
        a, b = sorted((lo[channel], hi[channel]))
        if a == b:
            b = a + 1 if a < 255 else a
            a = b - 1
        w.put(1, 1)
        w.put(1, 1)
        w.put(1, 1)
        w.put(a, 8)
        w.put(b, 8)
    w.put(0b101, 3)  # alpha: simple, one symbol, 8 bits...
    w.put(255, 8)  # ...255
    w.put(0b0001, 4)  # distance: simple, one symbol, 1 bit, symbol 0
    total = w.nbits + 3 * _WEBP_SIDE * _WEBP_SIDE
    value = w.value | (pixel_bits << w.nbits)
    return value.to_bytes((total + 7) // 8, "little")


def _riff_chunk(kind: bytes, data: bytes) -> bytes:
    return kind + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")


# ------------------------------------------------------------------------------------------ factory


class ImageFactory:
    """Makes file bodies. Shared pieces are cached per size; per-file heads are cached per key."""

    def __init__(self, seed: int = 0) -> None:
        self._seed = seed
        self._block = random.Random(f"block-{seed}").randbytes(_BLOCK_LEN)
        self._png: dict[int, _PngTemplate] = {}
        self._heads: dict[tuple[str, str, int], bytes] = {}
        self._crcs: dict[int, int] = {}
        self._webp_bits: int | None = None

    def body(self, ext: str, key: str, material: str, size: int) -> FileBody:
        """The file for ``key`` (unique per URL); ``material`` (seed, prompt) picks the colours."""
        if ext == "png":
            parts = self._png_parts(key, material, size)
        elif ext == "jpg":
            parts = self._jpeg_parts(key, material, size)
        elif ext == "webp":
            parts = self._webp_parts(key, material, size)
        else:
            raise ValueError(f"unknown image extension {ext!r}")
        return FileBody(parts, CONTENT_TYPES[ext])

    # PNG ------------------------------------------------------------------------------------------

    def _png_template(self, size: int) -> _PngTemplate:
        """Pixels for files of ``size`` bytes, shared by all sizes in the same quarter-octave."""
        bucket = int(2 ** (int(log2(max(size, 1)) * 4) / 4))  # sizes 19% apart share pixel data
        cached = self._png.get(bucket)
        if cached is not None:
            return cached
        budget = min(max(bucket - _PNG_FIXED - 12, 64), _PNG_MAX_IDAT)
        rng = random.Random(f"png-{self._seed}-{bucket}")
        side = max(8, isqrt(int(budget / 0.66)))
        while True:
            idat = zlib.compress(self._png_pixels(side, side, rng), 1)
            if len(idat) <= budget or side == 8:
                break
            side = max(8, min(side - 1, int(side * (budget / len(idat)) ** 0.5 * 0.995)))
        template = _PngTemplate(side, side, _png_chunk(b"IDAT", idat))
        self._png[bucket] = template
        return template

    @staticmethod
    def _png_pixels(width: int, height: int, rng: random.Random) -> bytes:
        stripe = max(4, width // 12)
        period = stripe * 8
        base = bytes(((x // stripe) % 8) << 5 for x in range(width + period))
        pattern = b"".join(base[period - 1 - (y % period) :][:width] for y in range(height))
        noise = rng.randbytes(width * height).translate(bytes(i & 0x1F for i in range(256)))
        pixels = (int.from_bytes(pattern, "big") | int.from_bytes(noise, "big")).to_bytes(width * height, "big")
        return b"".join(b"\x00" + pixels[y * width : (y + 1) * width] for y in range(height))

    def _pad_crc(self, length: int) -> int:
        crc = self._crcs.get(length)
        if crc is None:
            crc = zlib.crc32(b"paDd")
            for piece in _repeat_chunks(Repeat(self._block, length), _BLOCK_LEN):
                crc = zlib.crc32(piece, crc)
            self._crcs[length] = crc
        return crc

    def _png_parts(self, key: str, material: str, size: int) -> tuple[Part, ...]:
        t = self._png_template(size)
        head = self._heads.get(("png", key, size))
        if head is None:
            colours = _colours(material)
            palette = bytearray()
            for i in range(256):
                r, g, b = colours[i >> 5]
                j = (i & 0x1F) - 16
                palette += bytes((_clamp(r + j), _clamp(g + j), _clamp(b + j)))
            text = f"fake-cometapi {key}".encode("ascii", "replace").ljust(_PNG_TEXT_LEN)[:_PNG_TEXT_LEN]
            head = (
                PNG_SIGNATURE
                + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", t.width, t.height, 8, 3, 0, 0, 0))
                + _png_chunk(b"PLTE", bytes(palette))
                + _png_chunk(b"tEXt", b"Comment\x00" + text)
            )
            self._heads[("png", key, size)] = head
        pad_len = max(0, size - _PNG_FIXED - len(t.idat))
        return (
            head,
            t.idat,
            struct.pack(">I", pad_len) + b"paDd",
            Repeat(self._block, pad_len),
            struct.pack(">I", self._pad_crc(pad_len)) + _png_chunk(b"IEND", b""),
        )

    # JPEG -----------------------------------------------------------------------------------------

    def _jpeg_parts(self, key: str, material: str, size: int) -> tuple[Part, ...]:
        head = self._heads.get(("jpg", key, size))
        if head is None:
            scan = _jpeg_scan(_colours(material), random.Random(f"jpg-{key}"))
            head = _JPEG_DQT + _JPEG_SOF + _JPEG_DHT + _JPEG_SOS + scan + b"\xff\xd9"
            self._heads[("jpg", key, size)] = head
        parts: list[Part] = [b"\xff\xd8" + _JPEG_APP0]
        left = size - 2 - len(_JPEG_APP0) - len(head)
        while left >= 4:
            seg = min(left - 4, _JPEG_COM_MAX)
            if 0 < left - 4 - seg < 4:  # keep the next segment non-degenerate
                seg -= 4
            parts += [b"\xff\xfe" + struct.pack(">H", seg + 2), Repeat(self._block, seg)]
            left -= seg + 4
        parts.append(head)
        return tuple(parts)

    # WebP -----------------------------------------------------------------------------------------

    def _webp_parts(self, key: str, material: str, size: int) -> tuple[Part, ...]:
        head = self._heads.get(("webp", key, size))
        if head is None:
            if self._webp_bits is None:
                self._webp_bits = _webp_pixel_bits(random.Random(f"webp-{self._seed}"))
            vp8x = struct.pack("<B3x", 0) + (_WEBP_SIDE - 1).to_bytes(3, "little") * 2
            head = _riff_chunk(b"VP8X", vp8x) + _riff_chunk(b"VP8L", _webp_vp8l(_colours(material), self._webp_bits))
            self._heads[("webp", key, size)] = head
        pad = max(0, size - 12 - len(head) - 8)
        pad += pad % 2
        total = 12 + len(head) + 8 + pad
        return (
            b"RIFF" + struct.pack("<I", total - 8) + b"WEBP" + head,
            b"FAKE" + struct.pack("<I", pad),
            Repeat(self._block, pad),
        )
