"""Variations: V1..Vn under results with several images, Vary (Subtle) and Vary (Strong) under one.

A variation keeps the parent's prompt and sends the chosen image as the reference (taken from the clicked
message, so it is the image the user saw), on the server's variation model unless the request names one.
The parent's shape, format, quality and count carry over where that model takes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from services.errors import BadInput
from services.jobs.ask import Ask
from services.jobs.kinds.base import Kind
from services.jobs.kinds.outpaint import NO_SCENE
from services.jobs.kinds.upscale import subject
from services.rules.catalogue import ModelSpec
from services.rules.input_images import ImageRef
from services.rules.options import OPTION_NAMES, VARIATION_MODEL_SETTING, ModelNeed, RequestContext, Resolved, resolve
from services.rules.variation_models import (
    PREFERRED_VARIATION_MODEL,
    Strength,
    can_vary,
    carried_with_model,
    with_reference,
)
from services.store.models import Job
from services.text import _

# The admins' choice, else the server's default model if it can vary an image, else flux-dev, else any that can.
VARIERS = ModelNeed(
    fits=lambda spec: can_vary(spec.id),
    preferred=PREFERRED_VARIATION_MODEL,
    none_allowed=_("This server allows no model that makes variations; an admin can allow flux-dev."),
    setting=VARIATION_MODEL_SETTING,
)


@dataclass(frozen=True)
class Variation(Kind):
    name = "variation"
    strength: Strength = "strong"
    of_image: int | None = None  # the image's place in the parent's message (1-based)

    @property
    def checks_options(self) -> bool:
        return False  # the parent's options are fitted to the variation model on admission

    def model(self, context: RequestContext) -> str:
        return VARIERS.pick(context)

    def options(self, spec: ModelSpec | None, given: Mapping[str, object]) -> dict[str, object]:
        return carried_with_model(spec, given)

    def build(
        self, prompt: str, given: Mapping[str, object], references: Sequence[str], context: RequestContext
    ) -> Resolved:
        if len(references) != 1:
            raise BadInput(_("A variation starts from exactly one image."))
        resolved = resolve(prompt, given, [], context)
        return replace(resolved, input=with_reference(resolved.model, resolved.input, references[0], self.strength))

    def extra(self) -> dict[str, Any]:
        return {"strength": self.strength, "of_image": self.of_image}


def variation_ask(
    parent: Job,
    image: ImageRef,
    *,
    of_image: int,
    strength: Strength,
    user_id: int,
    channel_id: int,
    guild_id: int | None,
    age_restricted: bool,
) -> Ask:
    """A variation of `image` (the parent's image number `of_image`, as the user saw it), by `user_id` in
    `channel_id` (age-restricted or not: the server's image check skips those channels)."""
    carried = {name: parent.input[name] for name in OPTION_NAMES if name in parent.input}
    return Ask(
        kind=Variation(strength, of_image),
        user_id=user_id,
        channel_id=channel_id,
        guild_id=guild_id,
        age_restricted=age_restricted,
        prompt=subject(str(parent.input.get("prompt", ""))) or NO_SCENE,  # the parent's, without our instructions
        given=carried,
        images=[image],
        parent=parent,
    )
