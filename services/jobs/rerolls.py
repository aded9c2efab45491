"""What a reroll asks for: the parent job's model and inputs, without its seed (a new one is drawn)."""

from __future__ import annotations

from services.jobs.admission import Ask
from services.store.models import Job, JobKind

IMAGE_KEYS = ("input_image",)
IMAGES_KEY = "input_images"


def reroll_ask(parent: Job, *, user_id: int, channel_id: int, guild_id: int | None) -> Ask:
    """Same settings as `parent` (including its input images, for edits) and no seed, asked by `user_id`."""
    model_input = dict(parent.input)
    prompt = str(model_input.pop("prompt", ""))
    model_input.pop("seed", None)
    images = [str(model_input.pop(key)) for key in IMAGE_KEYS if key in model_input]
    several = model_input.pop(IMAGES_KEY, None)
    if isinstance(several, list):
        images += [str(url) for url in several]
    return Ask(
        kind=JobKind.REROLL,
        user_id=user_id,
        channel_id=channel_id,
        guild_id=guild_id,
        prompt=prompt,
        given={"model": parent.model, **model_input},
        image_urls=images,
        parent=parent,
        locale=parent.locale,
    )
