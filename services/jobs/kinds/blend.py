"""/blend: several images into one, on a model that takes several; the prompt is optional."""

from __future__ import annotations

from services.jobs.kinds.base import Kind
from services.rules.options import ModelNeed, RequestContext
from services.text import _

BLEND_PROMPT = "Blend the reference images into one coherent picture."
# The user's or the server's model if it takes several images, else flux-2-pro, else the one that takes the most.
BLENDERS = ModelNeed(
    fits=lambda spec: spec.max_images >= 2,
    preferred="black-forest-labs/flux-2-pro",
    none_allowed=_("This server allows no model that blends images; an admin can allow flux-2-pro."),
    personal=True,
    rank=lambda spec: -spec.max_images,
)


class Blend(Kind):
    name = "blend"

    def prompt(self, typed: str) -> str:
        return typed if typed.strip() else BLEND_PROMPT

    def model(self, context: RequestContext) -> str:
        return BLENDERS.pick(context)


BLEND = Blend()
