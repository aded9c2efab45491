"""A job's cost at the catalogue's default prices (per image, or per megapixel in and out for FLUX.2)."""

from __future__ import annotations

import textwrap

import pytest

from services.rules.catalogue import Catalogue, Request, built_in
from services.rules.pricing import job_cost

URL = "https://cdn.example/a.png"


def cost(
    model: str, options: dict[str, object] | None = None, images: int = 0, sizes=(), catalogue: Catalogue | None = None
) -> float | None:
    models = catalogue or built_in()
    model_id, sent = models.build_input(model, Request("a cat", options or {}, (URL,) * images))
    return job_cost(models, model_id, sent, sizes)


def test_per_image_models_charge_each_output():
    assert cost("flux-schnell", {"num_outputs": 4}) == pytest.approx(0.012)
    assert cost("flux-dev") == pytest.approx(0.025)
    assert cost("flux-pro") == pytest.approx(0.055)
    assert cost("flux-kontext-max", images=1) == pytest.approx(0.08)


def test_flux_2_pro_charges_a_run_and_every_megapixel_in_and_out():
    assert cost("flux-2-pro") == pytest.approx(0.03)  # 1 MP text-to-image, as Replicate lists it
    # two inputs of 1.5 MP (2 MP each, rounded up) and a 2 MP output: 0.015 + 4 * 0.015 + 2 * 0.015
    assert cost("flux-2-pro", {"resolution": "2 MP"}, 2, [(1500, 1000), (1000, 1500)]) == pytest.approx(0.105)
    # an input of unknown size counts as 1 MP; 0.5 MP is rounded up to 1
    assert cost("flux-2-pro", {"resolution": "0.5"}, 1) == pytest.approx(0.045)


def test_output_shaped_like_the_input_or_custom_is_counted_by_its_pixels():
    assert cost("flux-2-flex", {"resolution": "match_input_image"}, 1, [(2048, 2048)]) == pytest.approx(0.48)
    custom = {"aspect_ratio": "custom", "width": 2048, "height": 1024}
    assert cost("flux-2-flex", custom) == pytest.approx(0.12)


def test_flux_2_dev_costs_more_without_go_fast():
    assert cost("flux-2-dev", images=1) == pytest.approx(0.024)
    assert cost("flux-2-dev", {"go_fast": False}, 1) == pytest.approx(0.028)


def test_an_operator_price_is_used_and_unknown_models_have_none(tmp_path):
    path = tmp_path / "prices.toml"
    path.write_text(
        textwrap.dedent("""
        [models."black-forest-labs/flux-schnell"]
        price = { per_image = 0.002 }
    """)
    )
    assert cost("flux-schnell", {"num_outputs": 2}, catalogue=Catalogue.load(path)) == pytest.approx(0.004)
    assert cost("flux-schnell", {"num_outputs": 2}) == pytest.approx(0.006)  # the built-in catalogue is untouched
    assert job_cost(built_in(), "someone/else", {"prompt": "x"}) is None
