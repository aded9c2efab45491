"""Zoom Out, Pan, Make Square and Vary (Region), as pixels: the canvas an editing model fills, and putting the
original's pixels back over what it made.

An editing model (Kontext, FLUX.2) redraws the whole picture it gets. So for an outpaint the image is laid on a
larger canvas (the new area a flat grey the instruction names), the model fills it, and its output, brought to the
canvas's size, gets the original pasted back where it was: the user's pixels stay exactly theirs. For a region,
the model's output replaces the original only inside the chosen cells (or the white of a mask the user drew), with a
soft edge that stays inside them.

Plain bytes in and out; CPU-heavy, so callers run it off the event loop (`asyncio.to_thread`).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from PIL import Image, ImageChops, ImageDraw, ImageFilter

from services.errors import BadInput
from services.text import _

Size = tuple[int, int]
Direction = Literal["left", "right", "up", "down"]
DIRECTIONS: tuple[Direction, ...] = ("left", "right", "up", "down")
FILL = (128, 128, 128)  # the new area, as the instruction describes it ("the flat grey border")
MIN_ZOOM, MAX_ZOOM = 1.0, 2.0  # a zoom is more than MIN_ZOOM (1.0 adds nothing) and at most MAX_ZOOM
# The canvas sent to the model: its larger side and its pixels at most these (FLUX.2 takes up to 2048 a side
# and prices each input megapixel; Kontext works at about 1 MP whatever it gets).
SENT_MAX_SIDE = 2048
SENT_MAX_PIXELS = 2_000_000
# A finished canvas is at most this big (a 2x zoom of a 4 MP FLUX.2 image is 16 MP): beyond it, nothing is made.
MAX_CANVAS_PIXELS = 16_777_216
GRID = 3  # Vary (Region) picks cells of a GRID x GRID grid, numbered 1..9 row by row from the top left
FEATHER_FRACTION = 0.04  # the soft edge of a region, as a share of the image's shorter side


@dataclass(frozen=True)
class Placement:
    """Where the original lies on the canvas: the canvas's size and the original's top-left corner and size."""

    canvas: Size
    x: int
    y: int
    size: Size

    def to_json(self) -> list[int]:
        return [self.canvas[0], self.canvas[1], self.x, self.y, self.size[0], self.size[1]]

    @classmethod
    def from_json(cls, data: object) -> Placement | None:
        if not isinstance(data, list | tuple) or len(data) != 6 or not all(isinstance(v, int) for v in data):
            return None
        cw, ch, x, y, w, h = data
        return cls((cw, ch), x, y, (w, h))


ZOOM_RANGE = _("The zoom must be a number more than 1.0 and at most 2.0, like 1.5.")


def zoom(size: Size, factor: float) -> Placement:
    """The original centred on a canvas `factor` times its size (more than 1.0, at most 2.0); BadInput where the
    canvas, in whole pixels, would add no border (the model would be paid to give back the original)."""
    if not MIN_ZOOM < factor <= MAX_ZOOM:  # NaN fails this too
        raise BadInput(ZOOM_RANGE)
    w, h = size
    cw, ch = max(w, round(w * factor)), max(h, round(h * factor))
    if (cw, ch) == (w, h):
        raise BadInput(_("That zoom is too small to add anything around this image; try a larger one, like 1.5."))
    return _placed((cw, ch), (cw - w) // 2, (ch - h) // 2, size)


def pan(size: Size, direction: Direction) -> Placement:
    """Half the original's size added on the `direction` side (its width for left/right, its height for up/down)."""
    w, h = size
    if direction in ("left", "right"):
        extra = w // 2
        return _placed((w + extra, h), extra if direction == "left" else 0, 0, size)
    extra = h // 2
    return _placed((w, h + extra), 0, extra if direction == "up" else 0, size)


def square(size: Size) -> Placement:
    """The original centred on a square canvas as wide as its longer side."""
    w, h = size
    if w == h:
        raise BadInput(_("That image is already square."))
    side = max(w, h)
    return _placed((side, side), (side - w) // 2, (side - h) // 2, size)


def _placed(canvas: Size, x: int, y: int, size: Size) -> Placement:
    if canvas[0] * canvas[1] > MAX_CANVAS_PIXELS:
        raise BadInput(_("That image is too large to extend; try a smaller zoom."))
    return Placement(canvas, x, y, size)


def size_of(data: bytes) -> Size:
    """The image's (width, height), read from its header."""
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def canvas(original: bytes, placement: Placement) -> bytes:
    """The PNG to send: the original on the canvas, the new area grey, scaled down within what the models take."""
    with Image.open(io.BytesIO(original)) as image:
        picture = image.convert("RGB")
    board = Image.new("RGB", placement.canvas, FILL)
    board.paste(picture, (placement.x, placement.y))
    target = sent_size(placement.canvas)
    return _png(board if target == board.size else board.resize(target, Image.Resampling.LANCZOS))


def sent_size(size: Size) -> Size:
    """The size a canvas of `size` is sent at (see `canvas`)."""
    scale = _scale(size)
    return (max(1, int(size[0] * scale)), max(1, int(size[1] * scale)))  # floored: never over the limits


def paste_back(output: bytes, original: bytes, placement: Placement) -> bytes:
    """The model's output brought to the canvas's size, the original's pixels put back where they were (PNG)."""
    with Image.open(io.BytesIO(output)) as made:
        result = made.convert("RGB").resize(placement.canvas, Image.Resampling.LANCZOS)
    with Image.open(io.BytesIO(original)) as image:
        picture = image.convert("RGB")
    if picture.size != placement.size:
        raise ValueError(f"the original is {picture.size}, not the {placement.size} the job was made for")
    result.paste(picture, (placement.x, placement.y))
    return _png(result)


def cells_box(cell: int, size: Size) -> tuple[int, int, int, int]:
    """The pixel box (left, top, right, bottom) of grid cell `cell` (1..9, row by row) of an image of `size`."""
    row, col = divmod(cell - 1, GRID)
    w, h = size
    return (col * w // GRID, row * h // GRID, (col + 1) * w // GRID, (row + 1) * h // GRID)


def region_mask(size: Size, cells: Iterable[int]) -> Image.Image:
    """An L mask of the chosen cells: 255 well inside, falling to 0 at the region's edge, 0 everywhere outside.

    The blur runs on the region shrunk by the feather's width where it meets unchosen cells (an image edge is no
    seam) and is then clipped to the region itself, so the soft edge lies inside the cells and no pixel outside
    them changes.
    """
    chosen = set(cells)
    feather = max(1, round(min(size) * FEATHER_FRACTION))
    hard = Image.new("L", size, 0)
    shrunk = Image.new("L", size, 0)
    for cell in chosen:
        left, top, right, bottom = cells_box(cell, size)
        ImageDraw.Draw(hard).rectangle((left, top, right - 1, bottom - 1), fill=255)
        row, col = divmod(cell - 1, GRID)
        box = (
            left + _seam(chosen, row, col - 1, feather),
            top + _seam(chosen, row - 1, col, feather),
            right - _seam(chosen, row, col + 1, feather),
            bottom - _seam(chosen, row + 1, col, feather),
        )
        if box[0] < box[2] and box[1] < box[3]:
            ImageDraw.Draw(shrunk).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=255)
    soft = shrunk.filter(ImageFilter.GaussianBlur(feather / 2))
    return ImageChops.darker(soft, hard)


def _seam(chosen: set[int], row: int, col: int, feather: int) -> int:
    """How far a chosen cell's side is drawn in: by the feather where the cell across it is an unchosen one."""
    inside = 0 <= row < GRID and 0 <= col < GRID
    return feather if inside and row * GRID + col + 1 not in chosen else 0


def replace_region(output: bytes, original: bytes, cells: Iterable[int]) -> bytes:
    """The original with the chosen cells taken from the model's output (brought to its size), feathered (PNG)."""
    with Image.open(io.BytesIO(original)) as image:
        picture = image.convert("RGB")
    with Image.open(io.BytesIO(output)) as made:
        changed = made.convert("RGB").resize(picture.size, Image.Resampling.LANCZOS)
    return _png(Image.composite(changed, picture, region_mask(picture.size, cells)))


def replace_masked(output: bytes, original: bytes, mask: bytes) -> bytes:
    """The original with the model's output (brought to its size) where the mask is light, feathered inside (PNG)."""
    with Image.open(io.BytesIO(original)) as image:
        picture = image.convert("RGB")
    with Image.open(io.BytesIO(output)) as made:
        changed = made.convert("RGB").resize(picture.size, Image.Resampling.LANCZOS)
    return _png(Image.composite(changed, picture, soft_mask(mask, picture.size)))


def soft_mask(mask: bytes, size: Size) -> Image.Image:
    """A drawn mask as an L mask of `size`: its light parts 255 well inside, a soft edge inside them, 0 elsewhere
    (so no pixel outside what was painted changes); BadInput if it is not an image or marks nothing."""
    try:
        with Image.open(io.BytesIO(mask)) as drawn:
            grey = drawn.convert("L").resize(size, Image.Resampling.BILINEAR)
    except (OSError, ValueError):
        raise BadInput(_("The mask is not an image I can read.")) from None
    hard = grey.point(lambda value: 255 if value >= 128 else 0)
    if hard.getbbox() is None:
        raise BadInput(_("The mask marks nothing: paint the parts to change in white, the rest in black."))
    feather = max(1, round(min(size) * FEATHER_FRACTION))
    shrunk = hard.filter(ImageFilter.MinFilter(2 * (feather // 2) + 1))
    return ImageChops.darker(shrunk.filter(ImageFilter.GaussianBlur(feather / 2)), hard)


def _scale(size: Size) -> float:
    w, h = size
    return min(1.0, SENT_MAX_SIDE / max(w, h), math.sqrt(SENT_MAX_PIXELS / (w * h)))


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", optimize=False, compress_level=6)
    return out.getvalue()
