"""Remix: a result's settings again (model, shape, format, count, seed) with a prompt the user changed.

The image shown goes along as a reference where the model takes one: as its input image for the models that
take images (Kontext, FLUX.2), as a strong variation's reference for those that vary one (flux-dev, ultra); a
text-only model (schnell, 1.1 pro) gets the prompt alone, and the same seed keeps the result near the original.
The new prompt is judged like any prompt.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from services.jobs.ask import Ask
from services.jobs.input_refs import IMAGE_KEYS, IMAGES_KEY
from services.jobs.kinds.base import Kind
from services.rules.catalogue import ModelSpec
from services.rules.input_images import ImageRef
from services.rules.options import RequestContext, Resolved, resolve
from services.rules.variation_models import Strength, can_vary, split_reference, with_reference
from services.store.models import Job

REMIX_STRENGTH: Strength = "strong"  # the new prompt must be able to change the picture


@dataclass(frozen=True)
class Remix(Kind):
    name = "remix"
    of_image: int | None = None  # the image's place in the parent's message (1-based)

    @property
    def checks_options(self) -> bool:
        return False  # the parent's own settings, checked again when the input is built

    def images(self, images: Sequence[ImageRef], spec: ModelSpec | None) -> list[ImageRef]:
        if spec is not None and (spec.takes_images or can_vary(spec.id)):
            return list(images[:1])
        return []  # a text-only model: nothing to fetch or keep

    def build(
        self, prompt: str, given: Mapping[str, object], references: Sequence[str], context: RequestContext
    ) -> Resolved:
        spec = context.catalogue.resolve(str(given.get("model", "")), allow_unknown=context.allow_unknown_models)
        if references and spec is not None and not spec.takes_images and can_vary(spec.id):
            resolved = resolve(prompt, given, [], context)
            varied = with_reference(resolved.model, resolved.input, references[0], REMIX_STRENGTH)
            return replace(resolved, input=varied)
        return resolve(prompt, given, references, context)

    def extra(self) -> dict[str, Any]:
        return {"of_image": self.of_image}


def remix_ask(
    parent: Job,
    image: ImageRef,
    prompt: str,
    *,
    of_image: int,
    user_id: int,
    channel_id: int,
    guild_id: int | None,
    age_restricted: bool = False,
) -> Ask:
    """`prompt` with the parent's model and settings (its seed too), and `image` (the parent's image number
    `of_image`, as the user saw it) in place of the parent's own references."""
    settings = dict(parent.input)
    variation = split_reference(parent.model, settings)
    if variation is not None:
        settings = variation[0]
    for key in ("prompt", *IMAGE_KEYS, IMAGES_KEY):
        settings.pop(key, None)
    return Ask(
        kind=Remix(of_image),
        user_id=user_id,
        channel_id=channel_id,
        guild_id=guild_id,
        prompt=prompt,
        given={"model": parent.model, **settings},
        images=[image],
        parent=parent,
        age_restricted=age_restricted,
    )
