"""Checked outputs: each image a job made is sent to CometAPI's moderation endpoint (`omni-moderation-latest`, the
image as a data: URL) before it is posted, where the server asked for it and the channel is not age-restricted.

Admission decides whether a job is checked (`checking`: the server's choice, kept in the job so a resumed job is
checked the same way); the runner calls `check_outputs` once the images are fetched; the display spoilers or
withholds what is flagged and the server's log channel records it. A check that could not be made counts as
flagged (the server asked that nothing unchecked be shown plainly). The images' cost counts either way: they were
made and paid for.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from services.cometapi.files import ImageFile
from services.cometapi.words import Checked
from services.errors import ApiError
from services.store.models import Job
from services.text import Text, _, verbatim

log = logging.getLogger(__name__)

SPOILER, WITHHOLD = "spoiler", "withhold"
CHECK_KEY = "check_images"  # in a job's extra: how its outputs are checked (absent: they are not)
LOG_KEY = "check_log_channel"  # in a job's extra: where a flagged output is recorded


class Moderate(Protocol):
    """What asks the moderation endpoint (services/cometapi/client.py CometClient)."""

    async def moderate(self, parts: list[dict[str, object]], *, model: str = ...) -> Checked: ...


@dataclass(frozen=True)
class OutputCheck:
    mode: str  # SPOILER or WITHHOLD
    flagged: frozenset[int]  # 0-based indexes of the images flagged (or not checkable)
    categories: tuple[str, ...]  # what was flagged, across the images
    unchecked: frozenset[int] = frozenset()  # of those, the ones whose check failed
    log_channel_id: int | None = None

    @property
    def hidden(self) -> frozenset[int]:
        return self.flagged | self.unchecked


def checking(mode: str, *, age_restricted: bool, log_channel_id: int | None) -> dict[str, object]:
    """What admission keeps in a job's extra so its outputs are checked; nothing where they are not."""
    if mode not in (SPOILER, WITHHOLD) or age_restricted:
        return {}
    return {CHECK_KEY: mode, LOG_KEY: log_channel_id}


async def check_outputs(moderate: Moderate, job: Job, images: Sequence[ImageFile]) -> OutputCheck | None:
    """The moderation endpoint's view of each image, or None where the job's outputs are not checked."""
    more: Mapping[str, object] = job.extra.more
    mode = more.get(CHECK_KEY)
    if mode not in (SPOILER, WITHHOLD):
        return None
    flagged: set[int] = set()
    unchecked: set[int] = set()
    categories: set[str] = set()
    for index, image in enumerate(images):
        url = f"data:{image.content_type};base64,{base64.b64encode(image.data).decode('ascii')}"
        try:
            result = await moderate.moderate([{"type": "image_url", "image_url": {"url": url}}])
        except ApiError as exc:
            log.warning("Job %s: image %d could not be checked: %s", job.id, index + 1, exc)
            unchecked.add(index)
            continue
        if result.flagged:
            flagged.add(index)
            categories.update(result.categories)
    channel = more.get(LOG_KEY)
    return OutputCheck(
        str(mode), frozenset(flagged), tuple(sorted(categories)), frozenset(unchecked),
        channel if isinstance(channel, int) else None,
    )  # fmt: skip


def _what(check: OutputCheck) -> Text:
    return verbatim(", ".join(check.categories)) if check.categories else _("not checkable")


def withheld_text(check: OutputCheck) -> Text:
    """Said in place of a result whose every image was withheld."""
    return _(
        "This server checks the images it shows, and the check flagged this result ({what}), so it is not shown.",
        what=_what(check),
    )


def check_notes(check: OutputCheck) -> list[Text]:
    """The result's note about the images the check flagged (numbered from 1, as the buttons count)."""
    if not check.hidden:
        return []
    numbers = verbatim(", ".join(str(index + 1) for index in sorted(check.hidden)))
    if check.mode == WITHHOLD:
        return [
            _(
                "Image {numbers} was withheld: the server's image check flagged it ({what}).",
                numbers=numbers,
                what=_what(check),
            )
        ]
    return [
        _(
            "Image {numbers} is behind a spoiler: the server's image check flagged it ({what}).",
            numbers=numbers,
            what=_what(check),
        )
    ]
