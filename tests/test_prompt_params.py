"""Midjourney-style parameters in the prompt: read in one place, refused when unknown, and which one wins."""

from __future__ import annotations

import pytest

from services.errors import BadInput
from services.rules.catalogue import built_in
from services.rules.prompt_params import apply, parse


def test_parameters_are_taken_out_of_the_prompt_and_become_options():
    parsed = parse("a castle on a hill --ar 16:9 --seed 42 --m flux-2-pro --n 2 --format PNG --quality 90 --raw")
    assert parsed.prompt == "a castle on a hill"
    assert parsed.options == {
        "aspect_ratio": "16:9", "seed": "42", "model": "flux-2-pro", "num_outputs": "2",
        "output_format": "PNG", "output_quality": "90", "raw": True,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("typed", "resolution"),
    [("2", "2 MP"), ("0.5", "0.5 MP"), ("4mp", "4 MP"), ("1.0", "1 MP"), ("match", "match_input_image")],
)
def test_res_names_megapixels(typed, resolution):
    assert parse(f"a fox --res {typed}").options == {"resolution": resolution}


def test_parameters_may_stand_anywhere_and_an_em_dash_counts():
    parsed = parse("—ar 3:2 a fox\nin the snow --seed 7 at dawn")
    assert parsed.prompt == "a fox\nin the snow at dawn"
    assert parsed.options == {"aspect_ratio": "3:2", "seed": "7"}


def test_dashes_inside_words_and_lone_dashes_are_text():
    parsed = parse("a well--known bridge -- at night, x-ray style")
    assert parsed.prompt == "a well--known bridge -- at night, x-ray style"
    assert parsed.options == {}


def test_ratios_typed_with_x_or_slash_are_read_as_w_h():
    assert parse("a fox --ar 16x9").options["aspect_ratio"] == "16:9"
    assert parse("a fox --ar 4/5").options["aspect_ratio"] == "4:5"


@pytest.mark.parametrize(
    ("prompt", "fragment"),
    [
        ("a beach --no people", "no negative prompt"),
        ("a beach --stylize 250", "`--stylize` is not a parameter I know"),
        ("a beach --chaos 10", "Parameters: `--ar`"),
        ("a beach --seed", "`--seed` needs a value, e.g. `--seed 42`"),
        ("a beach --ar --seed 4", "`--ar` needs a value"),
        ("a beach --ar 1:1 --aspect 16:9", "both set aspect_ratio"),
        ("a beach --res huge", "`--res` takes megapixels"),
    ],
)
def test_unknown_negative_and_incomplete_parameters_are_refused(prompt, fragment):
    with pytest.raises(BadInput, match=fragment):
        parse(prompt)


def test_a_command_option_wins_over_a_parameter_and_a_note_says_so():
    applied = apply("a fox --ar 16:9 --seed 42", {"aspect_ratio": "1:1", "seed": None, "model": None}, built_in())
    assert applied.prompt == "a fox"
    assert applied.given == {"aspect_ratio": "1:1", "seed": "42", "model": None}
    assert tuple(str(note) for note in applied.notes) == (
        "`--ar 16:9` in the prompt was not used: the aspect_ratio option (`1:1`) wins.",
    )


def test_agreeing_values_make_no_note():
    applied = apply(
        "a fox --m flux-2-pro --n 1", {"model": "black-forest-labs/flux-2-pro", "num_outputs": 1}, built_in()
    )
    assert applied.notes == ()
    assert applied.given == {"model": "black-forest-labs/flux-2-pro", "num_outputs": 1}


def test_a_prompt_without_parameters_is_left_exactly_as_typed():
    text = "  a fox,   in the snow \n\n at dawn  "
    assert parse(text).prompt == text
