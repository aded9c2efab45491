"""Putting the user's own pixels back over a model's output, at delivery (Zoom Out, Pan, Make Square, Vary (Region)).

A job whose kind asked for it (`JobExtra.restore`) names its original, kept in the store with the job, and where
it goes; each fetched output is brought to the right size and the original pasted back (services/imaging/), so
outside the new area, or outside the chosen region, every pixel is the original's. Other jobs pass through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from services.cometapi.files import ImageFile
from services.errors import ServiceError
from services.imaging.outpaint import Placement, paste_back, replace_masked, replace_region
from services.store.base import Store
from services.store.models import Job


async def restored(job: Job, images: Sequence[ImageFile], store: Store) -> list[ImageFile]:
    """The images to post for `job`: its outputs, with the original's pixels put back where the job says."""
    restore = job.extra.restore
    if restore is None:
        return list(images)
    original = await store.get_input_image(restore.original)
    if original is None:
        raise ServiceError("The original image of this job is no longer stored, so its pixels cannot be kept.")
    placement = Placement.from_json(list(restore.placement)) if restore.placement else None
    mask = await store.get_input_image(restore.mask) if restore.mask else None
    if restore.mask and mask is None:
        raise ServiceError("The mask of this job is no longer stored, so the region cannot be kept to it.")

    def finish(output: bytes) -> bytes:
        if placement is not None:
            return paste_back(output, original.data, placement)
        if mask is not None:
            return replace_masked(output, original.data, mask.data)
        return replace_region(output, original.data, restore.cells)

    # Decoding and encoding a few megapixels takes a while: off the event loop.
    done = [await asyncio.to_thread(finish, image.data) for image in images]
    return [ImageFile(data, "image/png", "png") for data in done]
