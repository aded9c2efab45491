"""Vary (Region): the chosen cells of a 3x3 grid, or the white of a mask the user uploads, redrawn by an editing
model as the user says; the rest untouched.

The image (as the user saw it, from the clicked message) is sent whole to the editing model with an instruction
naming the part to change, since Kontext and FLUX.2 take no mask. At delivery only the chosen cells of the
model's output replace the original, with a soft edge inside them (services/imaging/outpaint.py
`replace_region`, `replace_masked` for a mask); outside them every pixel is the original's. A mask is kept with
the job like an input image but never sent: the model gets the picture alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from services.errors import BadInput
from services.imaging.outpaint import GRID, size_of, soft_mask
from services.jobs.input_refs import KeptImages
from services.jobs.kinds.outpaint import RedrawnImage
from services.rules.catalogue import ModelSpec
from services.rules.input_images import ImageRef
from services.store.job_extra import Restore
from services.text import _

CELLS = range(1, GRID * GRID + 1)
# The part of the picture each cell is, in the model's instruction (English: the instruction is the model's).
ROWS = ("top", "middle", "bottom")
COLUMNS = ("left", "centre", "right")
WHERE = "In the {cells} part of the picture (of a 3x3 grid), "
CHANGE = "make this change: "
KEEP = ". Keep everything else in the picture exactly as it is, with the same framing, style and light."
_WHERE = re.compile(re.escape(WHERE).replace(re.escape("{cells}"), "[a-z ,]+"))


def cell_words(cell: int) -> str:
    row, col = divmod(cell - 1, GRID)
    return "centre" if (row, col) == (1, 1) else f"{ROWS[row]} {COLUMNS[col]}"


def names_a_change(prompt: str) -> bool:
    """Whether `prompt` is a region's instruction, which names a change to a part of the picture (what the user
    typed), not what the picture shows."""
    text = prompt.strip()
    where, found, _rest = text.partition(CHANGE)
    return bool(found) and text.endswith(KEEP) and (not where or _WHERE.fullmatch(where) is not None)


def check_cells(cells: Sequence[int]) -> tuple[int, ...]:
    """The chosen cells, each once and in order; BadInput if none is or one is not a cell."""
    chosen = tuple(sorted(set(cells)))
    if not chosen or any(cell not in CELLS for cell in chosen):
        raise BadInput(_("Pick at least one part of the image to change."))
    return chosen


@dataclass(frozen=True)
class Region(RedrawnImage):
    name: ClassVar[str] = "region"
    cells: tuple[int, ...] = (5,)
    of_image: int | None = None
    masked: bool = False  # the second image is a mask: its white is the region (the cells, if any, name it)

    def prompt(self, typed: str) -> str:
        where = WHERE.format(cells=", ".join(map(cell_words, self.cells))) if self.cells else ""
        return f"{where}{CHANGE}{typed.strip()}{KEEP}"

    def images(self, images: Sequence[ImageRef], spec: ModelSpec | None) -> list[ImageRef]:
        if not self.masked:
            return super().images(images, spec)
        picture, mask = images  # the clicked image and the mask uploaded with it
        return [*super().images([picture], spec), mask]

    def derive(self, kept: KeptImages) -> tuple[KeptImages, dict[str, Any]]:
        original = kept.images[0]
        if not self.masked:
            return kept, {"restore": Restore(original.sha256, cells=check_cells(self.cells))}
        mask = kept.images[1]
        soft_mask(mask.data, size_of(original.data))  # refused now if it marks nothing
        # the picture alone goes to the model; the mask is only stored, for the paste-back
        link = kept.values[0]
        sent = KeptImages(
            [link], {link: kept.sha256[link]} if link in kept.sha256 else {}, [original, mask], kept.sizes[:1]
        )
        return sent, {"restore": Restore(original.sha256, mask=mask.sha256)}

    def extra(self) -> dict[str, Any]:
        return {"of_image": self.of_image}
