import pytest

from services.errors import BadInput
from services.rules.catalogue import CATALOGUE, Request, build_input, clean_prompt, resolve_model

SCHNELL = "black-forest-labs/flux-schnell"
KONTEXT = "black-forest-labs/flux-kontext-pro"


def test_defaults_filled_and_values_normalised():
    model, data = build_input("flux-schnell", Request("  a red fox ", {"aspect_ratio": "16:9", "num_outputs": "2"}))
    assert model == SCHNELL
    assert data["prompt"] == "a red fox"
    assert data["aspect_ratio"] == "16:9"
    assert data["num_outputs"] == 2
    assert data["output_format"] == "webp"
    assert data["output_quality"] == 80


def test_jpeg_is_read_as_jpg():
    _, data = build_input(SCHNELL, Request("x", {"output_format": "JPEG"}))
    assert data["output_format"] == "jpg"


@pytest.mark.parametrize(
    ("model", "options", "fragment"),
    [
        (SCHNELL, {"aspect_ratio": "7:3"}, "aspect_ratio"),
        (SCHNELL, {"num_outputs": 5}, "between 1 and 4"),
        (SCHNELL, {"num_outputs": "2.5"}, "whole number"),
        (SCHNELL, {"output_quality": "nan"}, "finite"),
        (SCHNELL, {"seed": -1}, "seed"),
        (SCHNELL, {"seed": True}, "number"),
        (SCHNELL, {"guidance": 3}, "does not take `guidance`"),
        ("black-forest-labs/flux-1.1-pro", {"num_outputs": 2}, "one image per request"),
        ("black-forest-labs/flux-1.1-pro", {"guidance": 2}, "does not take"),
        ("black-forest-labs/flux-1.1-pro-ultra", {"output_format": "webp"}, "jpg, png"),
        (KONTEXT, {"output_format": "webp"}, "jpg, png"),
        ("flux-9000", {}, "Unknown model"),
    ],
)
def test_refusals_say_what_is_allowed(model, options, fragment):
    with pytest.raises(BadInput, match=fragment):
        build_input(model, Request("a cat", options, ("https://cdn.example/x.png",) if "kontext" in model else ()))


def test_kontext_needs_an_image_and_defaults_to_matching_it():
    with pytest.raises(BadInput, match="edits an image: attach one with `image`"):
        build_input(KONTEXT, Request("make it blue"))
    _, data = build_input(KONTEXT, Request("make it blue", {}, ("https://cdn.example/a.png",)))
    assert data["input_image"] == "https://cdn.example/a.png"
    assert data["aspect_ratio"] == "match_input_image"
    assert data["output_format"] == "png"


def test_kontext_safety_tolerance_capped_with_an_image():
    with pytest.raises(BadInput, match="up to 2"):
        build_input(KONTEXT, Request("x", {"safety_tolerance": 5}, ("https://cdn.example/a.png",)))


def test_text_only_model_refuses_images():
    with pytest.raises(BadInput, match="text only"):
        build_input(SCHNELL, Request("x", {}, ("https://cdn.example/a.png",)))


@pytest.mark.parametrize("prompt", ["", "   ", "\u200b\u200b", "\x00\x07\n"])
def test_empty_prompts_refused(prompt):
    with pytest.raises(BadInput, match="empty"):
        clean_prompt(prompt)


def test_prompt_cleaning_and_length():
    assert clean_prompt("a\u200bb\x07c\nd") == "abc\nd"
    with pytest.raises(BadInput, match="limit"):
        clean_prompt("x" * 2001)


def test_unknown_models_pass_through_only_when_allowed():
    with pytest.raises(BadInput):
        resolve_model("someone/new-model")
    model, data = build_input("someone/new-model", Request("x", {"steps": 9}), allow_unknown=True)
    assert model == "someone/new-model"
    assert data == {"prompt": "x", "steps": 9}


def test_every_model_has_a_sane_spec():
    for spec in CATALOGUE.values():
        assert spec.typical_seconds[0] < spec.typical_seconds[1]
        assert "aspect_ratio" in spec.params
        assert (spec.images == "none") == (spec.image_param is None)
        assert spec.list_output == (spec.max_outputs > 1)
