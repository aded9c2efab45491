"""How long input images are kept: as long as a reroll can use them, within a total cap.

Every input image is stored once (services/jobs/input_refs.py) and marked used when it is stored and each time
a reroll sends it again. A task the bot starts (`keep_pruning`) deletes, every few minutes, the images unused
for longer than INPUT_IMAGE_RETENTION_DAYS, then, while they total more than INPUT_IMAGE_STORE_MB, the least
recently used; never one that an unfinished job still names (`Store.prune_input_images`). A reroll of an older
job whose images are gone is refused at once by admission, with nothing sent or charged.

The same pass gives back what a stopped process left booked: a ✨ Enhance chat is booked with the images and cost
of its job, given back when the chat ends; a chat still unsettled `STALE_CHAT_SECONDS` after it was booked was cut
off (a crash, a kill), so its member's quotas get the job's images back and the chat counts at its own bound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from services.store.base import Pruned, Store

log = logging.getLogger(__name__)

PRUNE_EVERY_SECONDS = 600.0
STALE_CHAT_SECONDS = 1800.0  # far past a chat's longest run (its timeouts and retries)


@dataclass(frozen=True)
class Retention:
    seconds: float  # kept this long after the last use
    max_bytes: int | None  # at most this much in all (None: no cap)


async def prune(store: Store, retention: Retention, *, now: float | None = None) -> Pruned:
    """One pass: what it deleted is logged."""
    moment = time.time() if now is None else now
    pruned = await store.prune_input_images(unused_since=moment - retention.seconds, max_bytes=retention.max_bytes)
    if pruned.images:
        log.info("Deleted %d input image(s), %.1f MB, no longer kept", pruned.images, pruned.bytes / 1024 / 1024)
    released = await store.release_stale_chats(booked_before=moment - STALE_CHAT_SECONDS)
    if released:
        log.info("Gave back the images booked by %d ✨ Enhance chat(s) that a stopped process left", released)
    return pruned


async def keep_pruning(store: Store, retention: Retention, *, every: float = PRUNE_EVERY_SECONDS) -> None:
    """Prune at once, then every `every` seconds, for as long as the bot runs."""
    while True:
        try:
            await prune(store, retention)
        except Exception as exc:
            # The store is unreachable for now: the images wait for the next pass.
            log.warning("Could not delete old input images (%s: %s); trying again later", type(exc).__name__, exc)
        await asyncio.sleep(every)
