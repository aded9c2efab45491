"""What a reroll asks for: the parent job's model and inputs, without its seed (a new one is drawn).

A reroll of a variation is another variation of the same reference, at the same strength.
"""

from __future__ import annotations

from services.jobs.admission import Ask
from services.jobs.input_refs import IMAGE_KEYS, IMAGES_KEY, image_values, stored_links
from services.rules.variation_models import split_reference
from services.store.models import Job, JobKind


def reroll_ask(
    parent: Job, *, user_id: int, channel_id: int, guild_id: int | None, age_restricted: bool = False
) -> Ask:
    """Same settings as `parent` (its input images for edits, its reference and strength for variations) and
    no seed, asked by `user_id`."""
    model_input = dict(parent.input)
    variation = split_reference(parent.model, model_input)
    images: list[str] = []
    if variation is not None:
        model_input, reference, _ = variation
        images.append(reference)
    prompt = str(model_input.pop("prompt", ""))
    model_input.pop("seed", None)
    images += image_values(model_input)
    for key in (*IMAGE_KEYS, IMAGES_KEY):
        model_input.pop(key, None)
    links = stored_links(parent.extra)
    return Ask(
        kind=JobKind.REROLL,
        user_id=user_id,
        channel_id=channel_id,
        guild_id=guild_id,
        prompt=prompt,
        given={"model": parent.model, **model_input},
        image_urls=images,
        image_sha256={value: links[value] for value in images if value in links},
        parent=parent,
        locale=parent.locale,
        vary=variation[2] if variation is not None else None,
        age_restricted=age_restricted,
    )
