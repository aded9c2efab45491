"""What a variation asks for: the parent's prompt and options, and one of its images as the reference."""

from __future__ import annotations

from services.jobs.admission import Ask
from services.rules.input_images import ImageRef
from services.rules.options import OPTION_NAMES
from services.rules.variation_models import Strength
from services.store.models import Job, JobKind


def variation_ask(
    parent: Job,
    image: ImageRef,
    *,
    of_image: int,
    strength: Strength,
    user_id: int,
    channel_id: int,
    guild_id: int | None,
) -> Ask:
    """A variation of `image` (the parent's image number `of_image`, as the user saw it), by `user_id`.

    The prompt and the shape, format, quality and count carry over; the model is the server's variation
    model, which may take other options than the parent's (those it does not take fall back to defaults).
    """
    carried = {name: parent.input[name] for name in OPTION_NAMES if name in parent.input}
    return Ask(
        kind=JobKind.VARIATION,
        user_id=user_id,
        channel_id=channel_id,
        guild_id=guild_id,
        prompt=str(parent.input.get("prompt", "")),
        given=carried,
        images=[image],
        parent=parent,
        vary=strength,
        of_image=of_image,
    )
