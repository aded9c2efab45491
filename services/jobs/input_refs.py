"""Input images as a job keeps them: the bytes once in the store, the job holding a short reference.

A data: URI in every job row made one 7.7 MB edit and three rerolls weigh 72 MB; and a Discord CDN link,
re-sent by a reroll days later, has expired (Discord signs each link with its expiry, query `ex`, epoch
seconds in hex). So admission stores each input image's bytes once (content-addressed, `Store.put_input_image`)
and the job's `input` holds, under the image parameters:

* `stored:<sha256>` in INPUT_IMAGE_MODE=data_uri: the stored bytes, sent as a data: URI;
* the CDN link in url mode, with `extra.input_sha256[link] = <sha256>` naming the stored copy of its bytes:
  the link is sent while it has a while left to live, the bytes once it is about to expire or has;
* in jobs from before this: a URL or a data: URI, sent as it is.

A reroll copies the references (nothing new is stored). `api_input`, just before the create, turns them into
what the API gets.

The stored bytes are kept for a while after their last use (services/jobs/retention.py), so a reroll says at
once when they are gone (`stored_copies`, at admission). A request carrying images inline is sized before it
is built (`check_request_size`): ten 9 MB images made a 120 MB body that the API could not take anyway.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from services.cometapi.files import ImageFile
from services.errors import BadInput
from services.rules.input_images import Size, dimensions
from services.store.base import Store
from services.store.models import InputImage, Job
from services.text import Text, _

IMAGE_KEYS = ("input_image", "image", "image_prompt")  # parameters holding one input image (edits, variations)
IMAGES_KEY = "input_images"  # the parameter holding a list of them
REF_PREFIX = "stored:"
# A link with less time than this left is not sent: the API fetches it when the prediction starts, which may
# be after a wait in its own queue.
LINK_MARGIN_SECONDS = 15 * 60

_SHA256 = re.compile(r"[0-9a-f]{64}")
GONE = "The input image of this job is no longer stored, so it cannot be sent again; attach the image anew."
DATA_URI_PREFIX = len("data:image/webp;base64,")  # the longest of the accepted types
MB = 1024 * 1024  # as the settings count MB (MAX_INPUT_IMAGE_MB, COMETAPI_MAX_REQUEST_MB)


@dataclass(frozen=True)
class KeptImages:
    """What admission puts in a new job for its input images."""

    values: list[str]  # what goes in `input`: links (url mode) or references (data_uri mode)
    sha256: dict[str, str]  # link -> sha256 of its stored bytes, for JobExtra.input_sha256
    images: list[InputImage]  # to store together with the job
    sizes: list[Size | None]  # (width, height) of each, where known: what FLUX.2 is priced by


def keep(urls: Sequence[str], files: Sequence[ImageFile], *, mode: str) -> KeptImages:
    """The references for freshly fetched attachments (`files[i]` was fetched from `urls[i]`)."""
    images = [InputImage.of(file.data, file.content_type) for file in files]
    sizes = [dimensions(file) for file in files]
    if mode == "data_uri":
        return KeptImages([reference(image.sha256) for image in images], {}, images, sizes)
    links = {url: image.sha256 for url, image in zip(urls, images, strict=True)}
    return KeptImages(list(urls), links, images, sizes)


def reference(sha256: str) -> str:
    return REF_PREFIX + sha256


def referenced(value: str) -> str | None:
    """The sha256 a `stored:` reference names, or None if `value` is not one."""
    if not value.startswith(REF_PREFIX):
        return None
    sha256 = value[len(REF_PREFIX) :]
    return sha256 if _SHA256.fullmatch(sha256) else None


def image_values(model_input: Mapping[str, object]) -> list[str]:
    """The input images of a job's `input`, in order (links, references, or old jobs' URLs and data: URIs)."""
    values = [str(model_input[key]) for key in IMAGE_KEYS if key in model_input]
    several = model_input.get(IMAGES_KEY)
    if isinstance(several, list):
        values += [str(value) for value in several]
    return values


def link_expiry(url: str) -> float | None:
    """When a signed CDN link expires (its `ex`, hex epoch seconds), or None if it does not say."""
    try:
        values = parse_qs(urlsplit(url).query).get("ex")
        return float(int(values[0], 16)) if values else None
    except ValueError:
        return None


def link_usable(url: str, now: float) -> bool:
    """Whether the API can still fetch `url` (a link without an expiry is taken to have none)."""
    expiry = link_expiry(url)
    return expiry is None or expiry - now >= LINK_MARGIN_SECONDS


def stored_copy(value: object, links: Mapping[str, str], *, mode: str, now: float) -> str | None:
    """The sha256 of the stored bytes that are sent for one input image value, or None if it is sent as it is
    (a link the API can still fetch, or an old job's URL or data: URI)."""
    if not isinstance(value, str):
        return None
    sha256 = referenced(value)
    if sha256 is not None:
        return sha256
    sha256 = links.get(value)
    if sha256 is None or (mode == "url" and link_usable(value, now)):
        return None
    return sha256


def stored_copies(model_input: Mapping[str, object], links: Mapping[str, str], *, mode: str, now: float) -> list[str]:
    """The sha256 of each input image of `model_input` sent as stored bytes, in order (repeats kept)."""
    found = (stored_copy(value, links, mode=mode, now=now) for value in image_values(model_input))
    return [sha256 for sha256 in found if sha256 is not None]


def data_uri_size(size: int) -> int:
    """The length of the data: URI of `size` bytes (base64 makes 4 characters of each 3 bytes)."""
    return DATA_URI_PREFIX + 4 * ((size + 2) // 3)


def request_size(model_input: Mapping[str, object], inline_sizes: Sequence[int]) -> int:
    """About how many bytes the create's body will be: the JSON of `model_input` as stored (references and
    links, a few dozen bytes each) and a data: URI for each image sent inline (`inline_sizes`, repeats kept)."""
    return len(json.dumps({"input": model_input}).encode()) + sum(data_uri_size(size) for size in inline_sizes)


def check_request_size(model_input: Mapping[str, object], inline_sizes: Sequence[int], limit: int | None) -> None:
    """BadInput when the request would be over `limit` bytes (None: no limit), before it is built."""
    if limit is None or not inline_sizes:
        return
    size = request_size(model_input, inline_sizes)
    if size > limit:
        raise BadInput(too_big(size, limit))


def too_big(size: int, limit: int) -> Text:
    return _(
        "With its images sent inline, this request would be {size} MB, over the {limit} MB the bot sends to the "
        "image service; use fewer or smaller images.",
        size=f"{size / MB:.1f}",
        limit=f"{limit / MB:g}",
    )


async def api_input(
    job: Job, store: Store, *, mode: str, now: float, max_request_bytes: int | None = None
) -> dict[str, object]:
    """The `input` to send for `job`, its input images as the API can use them at `now`.

    Raises BadInput if stored bytes it needs are gone, or if the request would be over `max_request_bytes`
    (sized before any image is read); a store error is raised as it is. Either way nothing has been sent.
    """
    links = {link: sha256 for link, sha256 in job.extra.input_sha256.items() if _SHA256.fullmatch(sha256)}
    needed = stored_copies(job.input, links, mode=mode, now=now)
    sizes = await store.input_image_sizes(needed)
    if any(sha256 not in sizes for sha256 in needed):
        raise BadInput(GONE)
    check_request_size(job.input, [sizes[sha256] for sha256 in needed], max_request_bytes)
    encoded: dict[str, str] = {}  # sha256 -> data: URI, so an image used twice is read and encoded once

    async def sendable(value: object) -> object:
        sha256 = stored_copy(value, links, mode=mode, now=now)
        if sha256 is None:
            return value
        if sha256 not in encoded:
            image = await store.get_input_image(sha256)
            if image is None:
                raise BadInput(GONE)
            encoded[sha256] = data_uri(image)
        return encoded[sha256]

    sent = dict(job.input)
    for key in IMAGE_KEYS:
        if key in sent:
            sent[key] = await sendable(sent[key])
    several = sent.get(IMAGES_KEY)
    if isinstance(several, list):
        sent[IMAGES_KEY] = [await sendable(value) for value in several]
    return sent


def data_uri(image: InputImage) -> str:
    """The image as a data: URI, built in one buffer: the base64 text is not copied once more to be prefixed."""
    uri = bytearray(f"data:{image.content_type};base64,".encode("ascii"))
    uri += base64.b64encode(image.data)
    return uri.decode("ascii")
