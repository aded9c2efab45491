"""Zoom Out (2x, 1.5x, a custom factor), Make Square and Pan ⬅ ➡ ⬆ ⬇: the picture extended by an editing model.

The chosen image (taken from the clicked message, as the user saw it) is laid on a larger canvas, the new area a
flat grey (services/imaging/outpaint.py); the canvas is kept in the store like any input image and sent as the
editing model's input with an instruction to fill the grey naturally. At delivery the model's output is brought
to the canvas's size and the original's pixels are put back where they were (services/jobs/restore.py), so what
the user had stays exactly as it was. The model: the server's editing model if it takes an image to edit (Kontext
or FLUX.2), else flux-kontext-pro, else any allowed one that does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from services.errors import BadInput
from services.imaging.outpaint import Direction, Placement, canvas, pan, sent_size, size_of, square, zoom
from services.jobs.input_refs import KeptImages, reference
from services.jobs.kinds.base import Kind
from services.rules.catalogue import MATCH_INPUT, ModelSpec
from services.rules.input_images import ImageRef
from services.rules.options import EDIT_MODEL_SETTING, ModelNeed, RequestContext
from services.store.job_extra import Restore
from services.store.models import InputImage
from services.text import _

EDITING_PARAMS = ("input_image", "input_images")  # Kontext's one image, FLUX.2's list: models that redraw an image
# The server's editing model where it is one of those, else its default model if it is, else Kontext pro.
OUTPAINTERS = ModelNeed(
    fits=lambda spec: spec.image_param in EDITING_PARAMS,
    preferred="black-forest-labs/flux-kontext-pro",
    none_allowed=_("This server allows no model that can extend an image; an admin can allow flux-kontext-pro."),
    setting=EDIT_MODEL_SETTING,
)
FILL_INSTRUCTION = (
    "Outpaint: replace the flat grey border around the picture with a natural continuation of the scene, "
    "matching its light, colours, perspective and style, with no visible seam or frame. "
    "Keep the existing picture unchanged. The scene: "
)
NO_SCENE = "as in the picture"  # the scene named when no prompt names one


def editing_options(spec: ModelSpec | None, given: Mapping[str, object]) -> dict[str, object]:
    """The options of an image redrawn whole: its shape (and FLUX.2's size) from the input, as a PNG."""
    options = {name: value for name, value in given.items() if name == "model"}
    if spec is not None:
        for name in ("aspect_ratio", "resolution"):
            if MATCH_INPUT in spec.choices(name):
                options[name] = MATCH_INPUT
        if "png" in spec.choices("output_format"):
            options["output_format"] = "png"  # lossless: the paste-back re-encodes as PNG anyway
    return options


class RedrawnImage(Kind):
    """One image redrawn whole by the editing model (an outpaint's canvas, a region's picture): no options are
    given, the kind sets them for its model."""

    @property
    def checks_options(self) -> bool:
        return False

    def model(self, context: RequestContext) -> str:
        return OUTPAINTERS.pick(context)

    def options(self, spec: ModelSpec | None, given: Mapping[str, object]) -> dict[str, object]:
        return editing_options(spec, given)

    def images(self, images: Sequence[ImageRef], spec: ModelSpec | None) -> list[ImageRef]:
        if len(images) != 1:
            raise BadInput(_("This works on exactly one image."))
        return list(images)


@dataclass(frozen=True)
class Outpaint(RedrawnImage):
    """An image extended on a larger canvas; subclasses say how large and where the original lies."""

    name: ClassVar[str] = "outpaint"
    of_image: int | None = None  # the image's place in the parent's message (1-based)

    def placement(self, size: tuple[int, int]) -> Placement:
        raise NotImplementedError

    def prompt(self, typed: str) -> str:
        return FILL_INSTRUCTION + (typed.strip() or NO_SCENE)

    def derive(self, kept: KeptImages) -> tuple[KeptImages, dict[str, Any]]:
        original = kept.images[0]
        placement = self.placement(size_of(original.data))
        board = InputImage.of(canvas(original.data, placement), "image/png")
        sent = KeptImages([reference(board.sha256)], {}, [original, board], [sent_size(placement.canvas)])
        return sent, {"restore": Restore(original.sha256, tuple(placement.to_json()))}

    def extra(self) -> dict[str, Any]:
        return {"of_image": self.of_image}


@dataclass(frozen=True)
class ZoomOut(Outpaint):
    name: ClassVar[str] = "zoom"
    factor: float = 2.0

    def placement(self, size: tuple[int, int]) -> Placement:
        return zoom(size, self.factor)


@dataclass(frozen=True)
class Pan(Outpaint):
    name: ClassVar[str] = "pan"
    direction: Direction = "left"

    def placement(self, size: tuple[int, int]) -> Placement:
        return pan(size, self.direction)


@dataclass(frozen=True)
class MakeSquare(Outpaint):
    name: ClassVar[str] = "square"

    def placement(self, size: tuple[int, int]) -> Placement:
        return square(size)
