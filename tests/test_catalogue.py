import pytest

from services.errors import BadInput
from services.rules.catalogue import Request, built_in, clean_prompt
from services.rules.options import RequestContext, resolve
from services.store.models import GuildSettings

MODELS = built_in()
SCHNELL = "black-forest-labs/flux-schnell"
KONTEXT = "black-forest-labs/flux-kontext-pro"


def test_defaults_filled_and_values_normalised():
    model, data = MODELS.build_input(
        "flux-schnell", Request("  a red fox ", {"aspect_ratio": "16:9", "num_outputs": "2"})
    )
    assert model == SCHNELL
    assert data["prompt"] == "a red fox"
    assert data["aspect_ratio"] == "16:9"
    assert data["num_outputs"] == 2
    assert data["output_format"] == "webp"
    assert data["output_quality"] == 80


def test_jpeg_is_read_as_jpg():
    _, data = MODELS.build_input(SCHNELL, Request("x", {"output_format": "JPEG"}))
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
        MODELS.build_input(
            model, Request("a cat", options, ("https://cdn.example/x.png",) if "kontext" in model else ())
        )


def test_kontext_needs_an_image_and_defaults_to_matching_it():
    with pytest.raises(BadInput, match="edits an image: attach one with `image`"):
        MODELS.build_input(KONTEXT, Request("make it blue"))
    _, data = MODELS.build_input(KONTEXT, Request("make it blue", {}, ("https://cdn.example/a.png",)))
    assert data["input_image"] == "https://cdn.example/a.png"
    assert data["aspect_ratio"] == "match_input_image"
    assert data["output_format"] == "png"


def test_kontext_safety_tolerance_capped_with_an_image():
    with pytest.raises(BadInput, match="up to 2"):
        MODELS.build_input(KONTEXT, Request("x", {"safety_tolerance": 5}, ("https://cdn.example/a.png",)))


def test_text_only_model_refuses_images():
    with pytest.raises(BadInput, match="text only"):
        MODELS.build_input(SCHNELL, Request("x", {}, ("https://cdn.example/a.png",)))


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
        MODELS.resolve("someone/new-model")
    model, data = MODELS.build_input("someone/new-model", Request("x", {"steps": 9}), allow_unknown=True)
    assert model == "someone/new-model"
    assert data == {"prompt": "x", "steps": 9}


def test_every_model_has_a_sane_spec():
    for spec in MODELS.values():
        assert spec.typical_seconds[0] < spec.typical_seconds[1]
        assert "aspect_ratio" in spec.params
        assert (spec.images == "none") == (spec.image_param is None)
        assert spec.list_output == (spec.max_outputs > 1)


PRO2, FLEX2, DEV2 = (f"black-forest-labs/flux-2-{tier}" for tier in ("pro", "flex", "dev"))
URLS = tuple(f"https://cdn.example/{n}.png" for n in range(10))


@pytest.mark.parametrize(
    ("model", "options", "images", "fragment"),
    [
        (PRO2, {}, 9, "flux-2-pro takes up to 8 input image\\(s\\), got 9 \\(flux-2-flex takes up to 10\\)"),
        (DEV2, {}, 5, "flux-2-dev takes up to 4"),
        (KONTEXT, {}, 2, "flux-kontext-pro takes up to 1 input image"),
        (DEV2, {"resolution": "1 MP"}, 0, "flux-2-dev does not take `resolution`"),
        (DEV2, {"safety_tolerance": 2}, 0, "flux-2-dev does not take `safety_tolerance`"),
        (PRO2, {"safety_tolerance": 6}, 0, "safety_tolerance must be between 1 and 5"),
        (FLEX2, {"safety_tolerance": 6}, 0, "between 1 and 5"),
        (PRO2, {"resolution": "3 MP"}, 0, "takes resolution 1 MP, 0.5 MP, 2 MP, 4 MP, match_input_image"),
        (PRO2, {"aspect_ratio": "21:9"}, 0, "takes aspect_ratio 1:1, match_input_image, 16:9"),
        (PRO2, {"num_outputs": 2}, 0, "one image per request"),
        (PRO2, {"width": 1024, "height": 1024}, 0, "takes width only with aspect_ratio custom"),
        (PRO2, {"aspect_ratio": "custom", "width": 1024}, 0, "aspect_ratio custom needs width and height"),
        (PRO2, {"aspect_ratio": "custom", "width": 1000, "height": 1024}, 0, "width in steps of 16"),
        (DEV2, {"aspect_ratio": "custom", "width": 2048, "height": 1024}, 0, "between 256 and 1440"),
        (PRO2, {"aspect_ratio": "match_input_image"}, 0, "match_input_image takes the shape of an input image"),
        (PRO2, {"resolution": "match_input_image"}, 0, "attach one"),
        (FLEX2, {"steps": 51}, 0, "steps must be between 1 and 50"),
        (FLEX2, {"guidance": 1}, 0, "guidance must be between 1.5 and 10"),
        ("black-forest-labs/flux-pro", {"aspect_ratio": "match_input_image"}, 0, "takes aspect_ratio 1:1"),
        ("black-forest-labs/flux-pro", {"guidance": 6}, 0, "between 2 and 5"),
        ("black-forest-labs/flux-pro", {}, 1, "text only"),
    ],
)
def test_flux_2_and_flux_pro_refusals_say_what_is_allowed(model, options, images, fragment):
    with pytest.raises(BadInput, match=fragment):
        MODELS.build_input(model, Request("a cat", options, URLS[:images]))


def test_flux_2_sends_its_references_as_a_list_even_one():
    _, one = MODELS.build_input(PRO2, Request("the cat", {}, URLS[:1]))
    assert one["input_images"] == [URLS[0]]
    _, ten = MODELS.build_input(FLEX2, Request("the cat", {}, URLS))
    assert ten["input_images"] == list(URLS)
    assert "input_image" not in ten


def test_flux_2_defaults_and_accepted_spellings():
    _, sent = MODELS.build_input(PRO2, Request("a cat", {"resolution": "2mp"}))
    assert sent == {"prompt": "a cat", "resolution": "2 MP", "aspect_ratio": "1:1", "output_format": "webp",
                    "output_quality": 80, "safety_tolerance": 2}  # fmt: skip
    assert MODELS.build_input(PRO2, Request("a cat", {"resolution": "4"}))[1]["resolution"] == "4 MP"
    _, custom = MODELS.build_input(DEV2, Request("a cat", {"aspect_ratio": "custom", "width": "1024", "height": 768}))
    assert (custom["width"], custom["height"], custom["go_fast"]) == (1024, 768, True)
    _, flex = MODELS.build_input(FLEX2, Request("a cat"))
    assert (flex["steps"], flex["guidance"], flex["prompt_upsampling"]) == (30, 4.5, True)
    _, matched = MODELS.build_input(PRO2, Request("a cat", {"aspect_ratio": "match_input_image"}, URLS[:2]))
    assert matched["aspect_ratio"] == "match_input_image"


def test_a_stored_default_shaped_by_an_input_image_is_skipped_without_one():
    guild = GuildSettings(1, {"aspect_ratio": "match_input_image"}, None, {}, 0.0)
    context = RequestContext(default_model=PRO2, catalogue=MODELS, guild=guild)
    assert resolve("a cat", {}, [], context).input["aspect_ratio"] == "1:1"
    assert resolve("a cat", {}, [URLS[0]], context).input["aspect_ratio"] == "match_input_image"
