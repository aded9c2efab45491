"""How each model makes a variation of an image: where the reference goes and how close it stays.

A variation keeps the prompt and sends the chosen image as a reference. Models say "how close" in their
own words, so each model that can vary has a mechanism here:

- flux-dev: image-to-image. `image` is the reference and `prompt_strength` the share of it that is
  repainted (1.0 keeps nothing): 0.35 stays close (subtle), 0.75 lets the prompt take over (strong).
- flux-1.1-pro-ultra: Redux-style image prompt. `image_prompt` is the reference and
  `image_prompt_strength` the weight of the image against the prompt: 0.6 (subtle), 0.2 (strong).

The values are constants within the models' 0-1 ranges, so nothing a user typed reaches them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from services.errors import BadInput
from services.rules.catalogue import OWNER, ModelSpec, check_option
from services.text import _

Strength = Literal["subtle", "strong"]
GRID_STRENGTH: Strength = "strong"  # V1..V4 under several images, as Midjourney's default (high variation)


@dataclass(frozen=True)
class Mechanism:
    image_key: str  # the input that takes the reference image (a URL or a data: URI)
    strength_key: str  # the input that says how close to stay
    subtle: float
    strong: float

    def value(self, strength: Strength) -> float:
        return self.subtle if strength == "subtle" else self.strong

    def strength_of(self, value: object) -> Strength:
        """The strength a stored value stands for (the nearer of the two)."""
        number = float(value) if isinstance(value, int | float) else self.strong
        return "subtle" if abs(number - self.subtle) < abs(number - self.strong) else "strong"


MECHANISMS: dict[str, Mechanism] = {
    f"{OWNER}/flux-dev": Mechanism("image", "prompt_strength", subtle=0.35, strong=0.75),
    f"{OWNER}/flux-1.1-pro-ultra": Mechanism("image_prompt", "image_prompt_strength", subtle=0.6, strong=0.2),
}
PREFERRED_VARIATION_MODEL = f"{OWNER}/flux-dev"


def can_vary(model_id: str) -> bool:
    return model_id in MECHANISMS


def carried_options(spec: ModelSpec | None, options: Mapping[str, object]) -> dict[str, object]:
    """The parent's options that `spec` takes as they are; the others are left to the defaults.

    A variation may run on another model than its parent (an edit's `match_input_image`, four images
    from a model that makes one): such a value is dropped rather than refused.
    """
    if spec is None:
        return dict(options)
    kept: dict[str, object] = {}
    for name, value in options.items():
        try:
            checked = check_option(spec, name, value)
        except BadInput:
            continue
        if checked is not None:
            kept[name] = checked
    return kept


def carried_with_model(spec: ModelSpec | None, given: Mapping[str, object]) -> dict[str, object]:
    """`carried_options` of everything but the model, which is kept as it was named."""
    carried = carried_options(spec, {name: value for name, value in given.items() if name != "model"})
    return {**carried, "model": given["model"]} if "model" in given else carried


def with_reference(
    model_id: str, model_input: Mapping[str, object], reference: str, strength: Strength
) -> dict[str, object]:
    """`model_input` (already checked for the model) with the reference image and its strength added."""
    mechanism = MECHANISMS.get(model_id)
    if mechanism is None:
        raise BadInput(_("{model} cannot make variations of an image.", model=model_id.rsplit("/", 1)[-1]))
    return {**model_input, mechanism.image_key: reference, mechanism.strength_key: mechanism.value(strength)}


def split_reference(model_id: str, model_input: Mapping[str, object]) -> tuple[dict[str, object], str, Strength] | None:
    """A variation's input without its reference: (the rest, the reference, the strength); None if not one."""
    mechanism = MECHANISMS.get(model_id)
    if mechanism is None or not model_input.get(mechanism.image_key):
        return None
    rest = dict(model_input)
    reference = str(rest.pop(mechanism.image_key))
    strength = mechanism.strength_of(rest.pop(mechanism.strength_key, None))
    return rest, reference, strength
