"""Upscale (Subtle) and Upscale (Creative): one image of a result drawn again at twice its width and height.

This is a re-render, not a pixel-exact enlargement: a FLUX.2 model takes the image as its only reference and
paints it anew at the larger size (`aspect_ratio` custom with `width`/`height`, within the model's largest side:
2048 for FLUX.2 pro and flex, which is their 4 MP, 1440 for FLUX.2 dev). Subtle asks for the same picture,
sharper, with nothing changed; Creative lets the model add detail. Small things (text, faces, fine patterns)
may still come out slightly different, and no FLUX model on CometAPI takes "how close" for FLUX.2.

flux-1.1-pro-ultra (about 4 MP by itself) is not used: its `image_prompt` guides the composition (Redux) and
does not keep the picture, so an "upscale" there would be a variation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from services.errors import BadInput
from services.jobs.ask import Ask
from services.jobs.kinds.base import Kind
from services.jobs.kinds.outpaint import FILL_INSTRUCTION, NO_SCENE
from services.jobs.kinds.region import names_a_change
from services.rules.catalogue import MAX_PROMPT_CHARS, IntRange, ModelSpec
from services.rules.input_images import ImageRef, Size
from services.rules.options import ModelNeed, RequestContext, Resolved, resolve
from services.rules.variation_models import carried_with_model
from services.store.models import Job
from services.text import _, clip

PREFERRED_UPSCALER = "black-forest-labs/flux-2-pro"
CUSTOM = "custom"
# What the model is told (English: the models follow it best). Subtle must not invite a new interpretation,
# so it leaves the original prompt out; Creative names the subject, so the detail it adds fits.
SUBTLE_INSTRUCTION = (
    "Upscale: reproduce the reference image exactly, at a higher resolution. Keep the same composition, subjects, "
    "poses, faces, colours, lighting, text and style; add, remove or move nothing. Only make it sharper, with "
    "cleaner edges and finer detail."
)
CREATIVE_INSTRUCTION = (
    "Upscale the reference image to a higher resolution and enrich it: sharpen it and add fine, believable detail "
    "and texture. Keep the composition, subjects, colours and style. The image shows: "
)
CREATIVE_UNNAMED = CREATIVE_INSTRUCTION.removesuffix(" The image shows: ")  # of an image no prompt names


def side_limits(spec: ModelSpec) -> tuple[int, int, int] | None:
    """(smallest side, largest side, step) of a model that takes a custom width and height, else None."""
    width, height = spec.params.get("width"), spec.params.get("height")
    if not isinstance(width, IntRange) or not isinstance(height, IntRange):
        return None
    if CUSTOM not in spec.choices("aspect_ratio"):
        return None
    step = max(width.multiple_of or 1, height.multiple_of or 1)
    return max(width.low, height.low), min(width.high, height.high), step


def can_upscale(spec: ModelSpec) -> bool:
    """A model that takes reference images in a list and a custom size: FLUX.2 pro, flex and dev."""
    return spec.image_list and side_limits(spec) is not None


# The server's default model if it can upscale, else flux-2-pro, else the allowed one that draws the largest.
UPSCALERS = ModelNeed(
    fits=can_upscale,
    preferred=PREFERRED_UPSCALER,
    none_allowed=_("This server allows no model that upscales images; an admin can allow flux-2-pro."),
    rank=lambda spec: -(limits[1] if (limits := side_limits(spec)) else 0),
)


def doubled(size: Size, low: int, high: int, step: int) -> Size | None:
    """Twice `size`, scaled (keeping its shape) to fit from `low` to `high` a side, in the model's steps: down where
    it is over `high`, up where it is under `low`; None where no size keeps its shape (too long and thin)."""
    width, height = size
    if max(width, height) * low > high * min(width, height):  # in whole numbers: no float decides the edge
        return None
    scale = max(min(2.0, high / max(width, height)), low / min(width, height))
    least = -(-low // step) * step  # `low` in the model's steps

    def fit(side: int) -> int:  # floored to a step; brought back to `least` where the floor (or a float) went under
        return max(least, min(high, int(side * scale) // step * step))

    return fit(width), fit(height)


@dataclass(frozen=True)
class Upscale(Kind):
    name = "upscale"
    creative: bool = False
    of_image: int | None = None  # the image's place in the parent's message (1-based)
    source: Size | None = None  # the image's real size, once fetched (`sized`)

    @property
    def checks_options(self) -> bool:
        return False  # the parent's format is fitted to the upscaling model on admission

    def model(self, context: RequestContext) -> str:
        return UPSCALERS.pick(context)

    def options(self, spec: ModelSpec | None, given: Mapping[str, object]) -> dict[str, object]:
        return carried_with_model(spec, given)

    def sized(self, sizes: Sequence[Size | None]) -> Upscale:
        return replace(self, source=sizes[0] if sizes else None)

    def build(
        self, prompt: str, given: Mapping[str, object], references: Sequence[str], context: RequestContext
    ) -> Resolved:
        if len(references) != 1:
            raise BadInput(_("An upscale starts from exactly one image."))
        model = str(given.get("model", ""))
        spec = context.catalogue.resolve(model, allow_unknown=context.allow_unknown_models)
        limits = side_limits(spec) if spec is not None and spec.image_list else None
        if spec is None or limits is None:
            raise BadInput(_("{model} cannot upscale an image.", model=model.rsplit("/", 1)[-1]))
        if self.source is None:
            raise BadInput(_("I can't tell the size of that image, so I can't upscale it."))
        # Refused before anything is stored or paid: a size that would not be larger, or not the image's shape.
        source = f"{self.source[0]}×{self.source[1]}"
        fitted = doubled(self.source, *limits)
        if fitted is None:
            raise BadInput(
                _(
                    "That image ({size}) is too long and thin to upscale: {model} draws from {least} to {most} pixels "
                    "a side, so it would come out stretched.",
                    size=source, model=spec.name, least=limits[0], most=limits[1],
                )
            )  # fmt: skip
        width, height = fitted
        if width <= self.source[0] or height <= self.source[1]:
            raise BadInput(
                _(
                    "That image ({size}) is already as large as {model} makes: it draws at most {most} a side.",
                    size=source, model=spec.name, most=limits[1],
                )
            )  # fmt: skip
        shaped = {**given, "aspect_ratio": CUSTOM, "width": width, "height": height}
        resolved = resolve(prompt, shaped, references, context)
        twice = (self.source[0] * 2, self.source[1] * 2)
        if (width, height) == twice:
            return resolved
        if width > twice[0] or height > twice[1]:  # brought up to the model's smallest side
            note = _(
                "Twice the size would be {twice}; {model} draws at least {least} a side, so it is {size}.",
                twice=f"{twice[0]}×{twice[1]}", model=spec.name, least=limits[0], size=f"{width}×{height}",
            )  # fmt: skip
        else:
            note = _(
                "Twice the size would be {twice}; {model} draws at most {most} a side, so it is {size}.",
                twice=f"{twice[0]}×{twice[1]}", model=spec.name, most=limits[1], size=f"{width}×{height}",
            )  # fmt: skip
        return replace(resolved, notes=(*resolved.notes, note))

    def extra(self) -> dict[str, Any]:
        return {"of_image": self.of_image, "strength": "creative" if self.creative else "subtle"}


# The instructions this bot wraps around what the user asked for (which follows them), and those that name
# nothing the picture shows.
WRAPPERS = (CREATIVE_INSTRUCTION, FILL_INSTRUCTION)
UNNAMED = (SUBTLE_INSTRUCTION, CREATIVE_UNNAMED, NO_SCENE)


def subject(prompt: str) -> str:
    """What a job's image shows, in the user's words: its prompt without the instructions this bot wraps around
    them (an upscale's, a zoom's, a pan's, Make Square's), however many levels deep; "" where it names nothing the
    picture shows (a subtle upscale, a region's change, an outpaint of an unnamed scene). A job that works on its
    parent's image asks with this, not the parent's prompt, so the instructions do not pile up."""
    text = prompt.strip()
    while not (text in UNNAMED or names_a_change(text)):
        wrapper = next((wrapper for wrapper in WRAPPERS if text.startswith(wrapper)), None)
        if wrapper is None:
            return text
        text = text.removeprefix(wrapper).strip()
    return ""


def instruction(parent_prompt: str, *, creative: bool) -> str:
    """What the model is asked to do with the image (an upscale of an upscale names the original subject)."""
    shows = " ".join(subject(parent_prompt).split())
    if not creative:
        return SUBTLE_INSTRUCTION
    if not shows:
        return CREATIVE_UNNAMED
    return CREATIVE_INSTRUCTION + clip(shows, MAX_PROMPT_CHARS - len(CREATIVE_INSTRUCTION))


def upscale_ask(
    parent: Job | None,
    image: ImageRef,
    *,
    of_image: int,
    creative: bool,
    user_id: int,
    channel_id: int,
    guild_id: int | None,
    age_restricted: bool = False,
) -> Ask:
    """An upscale of `image` (the parent's image number `of_image`, as the user saw it; no parent: any image), by
    `user_id`; the parent's output format and quality carry over where the upscaling model takes them."""
    given = parent.input if parent is not None else {}
    carried: dict[str, object] = {name: given[name] for name in ("output_format", "output_quality") if name in given}
    return Ask(
        kind=Upscale(creative, of_image),
        user_id=user_id,
        channel_id=channel_id,
        guild_id=guild_id,
        prompt=instruction(str(given.get("prompt", "")), creative=creative),
        given=carried,
        images=[image],
        parent=parent,
        age_restricted=age_restricted,
    )
