"""Rerolls (the 🔄 button and reaction): the parent job's model and inputs again, with a new seed.

The input images are the parent's own references (nothing new is fetched or stored); a reroll of a variation is
another variation of the same reference, at the same strength.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.jobs.ask import Ask
from services.jobs.input_refs import IMAGE_KEYS, IMAGES_KEY, KeptImages, image_values
from services.jobs.kinds.base import Kind
from services.jobs.kinds.variation import Variation
from services.rules.catalogue import ModelSpec
from services.rules.options import RequestContext, Resolved
from services.rules.variation_models import split_reference
from services.store.job_extra import Restore
from services.store.models import Job


@dataclass(frozen=True)
class Reroll(Kind):
    name = "reroll"
    variation: Variation | None = None  # set when the parent was a variation
    restore: Restore | None = None  # the parent's original pixels to put back (a zoom, a pan, a region)

    @property
    def checks_options(self) -> bool:
        return self.variation is None

    def options(self, spec: ModelSpec | None, given: Mapping[str, object]) -> dict[str, object]:
        return self.variation.options(spec, given) if self.variation else dict(given)

    def build(
        self, prompt: str, given: Mapping[str, object], references: Sequence[str], context: RequestContext
    ) -> Resolved:
        if self.variation is not None:
            return self.variation.build(prompt, given, references, context)
        return super().build(prompt, given, references, context)

    def extra(self) -> dict[str, Any]:
        kept = {"restore": self.restore} if self.restore else {}
        return {"strength": self.variation.strength, **kept} if self.variation else kept


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
    links = parent.extra.input_sha256
    sizes = list(parent.extra.input_sizes)
    return Ask(
        kind=Reroll(Variation(variation[2]) if variation is not None else None, parent.extra.restore),
        user_id=user_id,
        channel_id=channel_id,
        guild_id=guild_id,
        prompt=prompt,
        given={"model": parent.model, **model_input},
        reused=KeptImages(
            images,
            {value: links[value] for value in images if value in links},
            [],
            sizes if len(sizes) == len(images) else [None] * len(images),
        ),
        parent=parent,
        locale=parent.locale,
        age_restricted=age_restricted,
    )
