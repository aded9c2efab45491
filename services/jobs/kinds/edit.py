"""✏️ Edit, E1..En and "Edit with FLUX": change images in words, on the server's editing model, keeping their shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.jobs.kinds.base import Kind
from services.rules.catalogue import MATCH_INPUT, ModelSpec
from services.rules.input_images import ImageRef
from services.rules.options import EDIT_MODEL_SETTING, ModelNeed, RequestContext
from services.text import _

# The server's editing model, else its default model if that edits images, else an allowed Kontext model
# (any allowed model that takes images, failing that).
EDITORS = ModelNeed(
    fits=lambda spec: spec.takes_images,
    preferred="black-forest-labs/flux-kontext-pro",
    none_allowed=_("This server allows no model that edits images; an admin can allow flux-kontext-pro."),
    setting=EDIT_MODEL_SETTING,
)


@dataclass(frozen=True)
class Edit(Kind):
    name = "edit"
    fit: bool = False  # send only as many of the images as the model takes (nobody said which)
    of_image: int | None = None  # the one image picked, by its place in the message (1-based)

    @property
    def checks_image_count(self) -> bool:
        return not self.fit

    def model(self, context: RequestContext) -> str:
        return EDITORS.pick(context)

    def options(self, spec: ModelSpec | None, given: Mapping[str, object]) -> dict[str, object]:
        options = dict(given)
        if spec is not None and MATCH_INPUT in spec.choices("aspect_ratio"):
            options.setdefault("aspect_ratio", MATCH_INPUT)  # an edit keeps the picture's shape
        return options

    def images(self, images: Sequence[ImageRef], spec: ModelSpec | None) -> list[ImageRef]:
        return list(images[: max(spec.max_images, 1)] if self.fit and spec is not None else images)

    def extra(self) -> dict[str, Any]:
        return {"of_image": self.of_image}
