"""Vary (Region): the chosen cells of a 3x3 grid redrawn by an editing model as the user says; the rest untouched.

The image (as the user saw it, from the clicked message) is sent whole to the editing model with an instruction
naming the part to change, since Kontext and FLUX.2 take no mask. At delivery only the chosen cells of the
model's output replace the original, with a soft edge inside them (services/imaging/outpaint.py
`replace_region`); outside them every pixel is the original's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from services.errors import BadInput
from services.imaging.outpaint import GRID
from services.jobs.input_refs import KeptImages
from services.jobs.kinds.outpaint import RedrawnImage
from services.store.job_extra import Restore
from services.text import _

CELLS = range(1, GRID * GRID + 1)
# The part of the picture each cell is, in the model's instruction (English: the instruction is the model's).
ROWS = ("top", "middle", "bottom")
COLUMNS = ("left", "centre", "right")


def cell_words(cell: int) -> str:
    row, col = divmod(cell - 1, GRID)
    return "centre" if (row, col) == (1, 1) else f"{ROWS[row]} {COLUMNS[col]}"


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

    def prompt(self, typed: str) -> str:
        parts = ", ".join(cell_words(cell) for cell in self.cells)
        return (
            f"In the {parts} part of the picture (of a 3x3 grid), make this change: {typed.strip()}. "
            "Keep everything else in the picture exactly as it is, with the same framing, style and light."
        )

    def derive(self, kept: KeptImages) -> tuple[KeptImages, dict[str, Any]]:
        return kept, {"restore": Restore(kept.images[0].sha256, cells=check_cells(self.cells))}

    def extra(self) -> dict[str, Any]:
        return {"of_image": self.of_image}
