"""The fake CometAPI's look at input images, as the real API takes them when a prediction starts.

Each `input_image` / `input_images` value is fetched (an http(s) URL: a Discord CDN link in the tests) or
decoded (a base64 data: URI), and must be a PNG, JPEG, GIF or WebP file. One it cannot use fails the
prediction the way the real API does ("Could not download input_image: HTTP 404").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

IMAGE_PARAMS = ("input_image",)
IMAGES_PARAM = "input_images"
_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")
_TIMEOUT = aiohttp.ClientTimeout(total=10)


@dataclass(frozen=True)
class InputSeen:
    """One input image as the fake API got it."""

    param: str  # input_image, input_images[1], ...
    source: str  # "url" or "data_uri"
    sha256: str | None  # of the bytes, when it got some
    size: int
    problem: str | None  # why it could not use it; None when it could

    def as_json(self) -> dict[str, Any]:
        return {"param": self.param, "source": self.source, "sha256": self.sha256, "size": self.size}


def _values(inp: Mapping[str, Any]) -> list[tuple[str, Any]]:
    found = [(key, inp[key]) for key in IMAGE_PARAMS if key in inp]
    several = inp.get(IMAGES_PARAM)
    if isinstance(several, list):
        found += [(f"{IMAGES_PARAM}[{i}]", value) for i, value in enumerate(several)]
    return found


def _is_image(data: bytes) -> bool:
    return data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


async def _fetch(session: aiohttp.ClientSession, url: str) -> tuple[bytes | None, str | None]:
    try:
        async with session.get(url, timeout=_TIMEOUT) as response:
            if response.status != 200:
                return None, f"HTTP {response.status}"
            return await response.read(), None
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return None, f"{type(exc).__name__}"


async def look_at_inputs(inp: Mapping[str, Any]) -> list[InputSeen]:
    """What the API makes of each input image of `inp`."""
    seen: list[InputSeen] = []
    async with aiohttp.ClientSession() as session:
        for param, value in _values(inp):
            data: bytes | None = None
            problem: str | None = None
            text = value if isinstance(value, str) else ""
            if text.startswith("data:"):
                source = "data_uri"
                head, _, payload = text.partition(",")
                try:
                    data = base64.b64decode(payload, validate=True) if head.endswith(";base64") else None
                except (binascii.Error, ValueError):
                    data = None
                problem = None if data is not None else "not a base64 data: URI"
            elif text.startswith(("http://", "https://")):
                source = "url"
                data, problem = await _fetch(session, text)
                problem = None if problem is None else f"Could not download {param}: {problem}"
            else:
                source, problem = "other", f"{param} is not a URL or a data: URI"
            if data is not None and problem is None and not _is_image(data):
                problem = f"{param} is not an image"
            digest = hashlib.sha256(data).hexdigest() if data is not None else None
            seen.append(InputSeen(param, source, digest, len(data or b""), problem))
    return seen
