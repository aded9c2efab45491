"""The Pillow side of Zoom Out, Pan, Make Square and Vary (Region): where the original lies on the canvas, the
canvas sent within the models' sizes, the paste-back and the feathered region, pixel for pixel."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from services.errors import BadInput
from services.imaging.outpaint import (
    SENT_MAX_PIXELS,
    SENT_MAX_SIDE,
    Placement,
    canvas,
    cells_box,
    pan,
    paste_back,
    region_mask,
    replace_region,
    sent_size,
    square,
    zoom,
)
from services.store.job_extra import JobExtra, Restore
from tests.helpers import encoded


def noise(size: tuple[int, int], seed: int) -> Image.Image:
    w, h = size
    return Image.frombytes(
        "RGB",
        size,
        bytes((x * 31 + y * 17 + c * 7 + seed * 59) % 251 for y in range(h) for x in range(w) for c in range(3)),
    )


def level(mask: Image.Image, xy: tuple[int, int]) -> int:
    return int(mask.getpixel(xy))  # type: ignore[arg-type]  # one band (L): an int


def opened(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


@pytest.mark.parametrize(
    ("factor", "canvas_size", "corner"),
    [(2.0, (200, 120), (50, 30)), (1.5, (150, 90), (25, 15)), (1.02, (102, 61), (1, 0)), (1.25, (125, 75), (12, 7))],
)
def test_zoom_centres_the_original_on_a_canvas_factor_times_its_size(factor, canvas_size, corner):
    assert zoom((100, 60), factor) == Placement(canvas_size, corner[0], corner[1], (100, 60))


@pytest.mark.parametrize("factor", [0.99, 1.0, 2.01, float("nan"), float("inf")])
def test_zoom_outside_1_to_2_is_refused(factor):
    with pytest.raises(BadInput):
        zoom((100, 60), factor)


@pytest.mark.parametrize(
    ("direction", "canvas_size", "corner"),
    [
        ("left", (150, 60), (50, 0)),
        ("right", (150, 60), (0, 0)),
        ("up", (100, 90), (0, 30)),
        ("down", (100, 90), (0, 0)),
    ],
)
def test_pan_adds_half_the_size_on_that_side(direction, canvas_size, corner):
    assert pan((100, 60), direction) == Placement(canvas_size, corner[0], corner[1], (100, 60))


def test_make_square_centres_on_the_longer_side_and_refuses_a_square():
    assert square((60, 100)) == Placement((100, 100), 20, 0, (60, 100))
    assert square((101, 40)) == Placement((101, 101), 0, 30, (101, 40))
    with pytest.raises(BadInput, match="already square"):
        square((64, 64))


def test_a_canvas_too_large_is_refused_before_any_pixel():
    with pytest.raises(BadInput):
        zoom((4096, 4096), 2.0)


def test_the_canvas_is_grey_around_the_original_and_sent_within_the_models_sizes():
    original = noise((40, 20), 1)
    board = opened(canvas(encoded(original), zoom((40, 20), 2.0)))
    assert board.size == (80, 40)
    assert board.crop((20, 10, 60, 30)).tobytes() == original.tobytes()
    assert board.getpixel((0, 0)) == board.getpixel((79, 39)) == (128, 128, 128)
    big = sent_size((4096, 3072))
    assert max(big) <= SENT_MAX_SIDE and big[0] * big[1] <= SENT_MAX_PIXELS
    assert abs(big[0] / big[1] - 4 / 3) < 0.01  # the shape kept
    assert sent_size((800, 600)) == (800, 600)


def test_paste_back_keeps_every_original_pixel_whatever_size_the_model_made():
    original = noise((90, 50), 2)
    placement = pan((90, 50), "left")
    made = noise((64, 64), 3)  # a square output, of another size than the canvas
    result = opened(paste_back(encoded(made), encoded(original), placement))
    assert result.size == (135, 50)
    assert result.crop((45, 0, 135, 50)).tobytes() == original.tobytes()
    assert result.crop((0, 0, 45, 50)).tobytes() != Image.new("RGB", (45, 50), (128, 128, 128)).tobytes()


def test_the_region_mask_is_zero_outside_the_cells_full_inside_and_soft_at_the_seam():
    size = (300, 300)
    mask = region_mask(size, [5])
    left, top, right, bottom = cells_box(5, size)
    assert (left, top, right, bottom) == (100, 100, 200, 200)
    for y in range(300):
        for x in range(300):
            if not (left <= x < right and top <= y < bottom):
                assert level(mask, (x, y)) == 0, (x, y)
    assert level(mask, (150, 150)) == 255
    assert 0 < level(mask, (101, 150)) < 255  # feathered inside the seam


def test_a_region_at_the_image_edge_is_not_feathered_there():
    mask = region_mask((300, 300), [1, 2, 3])  # the whole top row
    assert level(mask, (0, 0)) == level(mask, (150, 0)) == 255
    assert level(mask, (150, 99)) < 255 and level(mask, (150, 100)) == 0


def test_replace_region_takes_the_model_inside_and_the_original_outside():
    original, made = noise((90, 90), 4), noise((45, 45), 5)
    result = opened(replace_region(encoded(made), encoded(original), [9]))
    outside = original.copy()
    outside.paste((0, 0, 0), (60, 60, 90, 90))
    result_outside = result.copy()
    result_outside.paste((0, 0, 0), (60, 60, 90, 90))
    assert result_outside.tobytes() == outside.tobytes()
    resized = made.resize((90, 90), Image.Resampling.LANCZOS)
    assert result.getpixel((89, 89)) == resized.getpixel((89, 89))


def test_the_job_keeps_what_to_restore():
    extra = JobExtra(restore=Restore("ab" * 32, (150, 60, 50, 0, 100, 60)))
    assert JobExtra.from_json(extra.to_json()) == extra
    region = JobExtra(restore=Restore("cd" * 32, cells=(1, 5)))
    assert JobExtra.from_json(region.to_json()) == region
    assert JobExtra.from_json({}).restore is None
