"""Which model makes a variation and how: the reference and strength per model, the parent's options carried
over, and the custom ids of the per-image buttons (old ones keep working)."""

from __future__ import annotations

import re
import time

import pytest

from services.errors import BadInput
from services.jobs.kinds.reroll import reroll_ask
from services.jobs.kinds.variation import VARIERS
from services.rules.catalogue import built_in
from services.rules.options import RequestContext
from services.rules.server_settings import validated_defaults
from services.rules.variation_models import Strength, carried_options, split_reference, with_reference
from services.store.models import GuildSettings, Job, JobStatus
from ui.views import Action, JobButton, Press, Row, custom_id, result_rows

MODELS = built_in()
DEV = "black-forest-labs/flux-dev"
ULTRA = "black-forest-labs/flux-1.1-pro-ultra"
SCHNELL = "black-forest-labs/flux-schnell"


def context(defaults=None, allowed=None):
    guild = GuildSettings(1, dict(defaults or {}), allowed, {}, time.time())
    return RequestContext(default_model=SCHNELL, catalogue=MODELS, guild=guild)


def test_the_variation_model_is_the_admins_choice_then_the_default_then_flux_dev():
    assert VARIERS.pick(RequestContext(default_model=SCHNELL, catalogue=MODELS)) == DEV
    assert VARIERS.pick(context({"model": ULTRA})) == ULTRA  # the server's default model can vary
    assert VARIERS.pick(context({"model": ULTRA, "variation_model": DEV})) == DEV  # the admins' choice wins
    assert VARIERS.pick(context({"variation_model": ULTRA}, allowed=[SCHNELL, DEV])) == DEV  # only if allowed
    assert VARIERS.pick(context(allowed=[SCHNELL, ULTRA])) == ULTRA
    with pytest.raises(BadInput, match="allows no model that makes variations"):
        VARIERS.pick(context(allowed=[SCHNELL]))


def test_only_a_model_that_can_vary_may_be_chosen():
    saved = validated_defaults(MODELS, {}, {"variation_model": "flux-1.1-pro-ultra"}, default_model=SCHNELL)
    assert saved == {"variation_model": ULTRA}
    assert (
        validated_defaults(MODELS, saved, {"aspect_ratio": "16:9"}, default_model=SCHNELL)["variation_model"] == ULTRA
    )
    with pytest.raises(BadInput, match="flux-kontext-pro cannot make variations"):
        validated_defaults(MODELS, {}, {"variation_model": "flux-kontext-pro"}, default_model=SCHNELL)


@pytest.mark.parametrize(
    ("model", "image_key", "strength_key", "subtle", "strong"),
    [(DEV, "image", "prompt_strength", 0.35, 0.75), (ULTRA, "image_prompt", "image_prompt_strength", 0.6, 0.2)],
)
def test_each_model_gets_the_reference_and_its_strength_where_it_takes_them(
    model, image_key, strength_key, subtle, strong
):
    base: dict[str, object] = {"prompt": "a fox", "seed": 3}
    choices: list[tuple[Strength, float]] = [("subtle", subtle), ("strong", strong)]
    for strength, value in choices:
        sent = with_reference(model, base, "https://cdn/x.png", strength)
        assert sent == {**base, image_key: "https://cdn/x.png", strength_key: value}
        assert split_reference(model, sent) == (base, "https://cdn/x.png", strength)
        low, high = sorted((subtle, strong))
        assert 0 <= low < high <= 1
    assert split_reference(model, base) is None
    with pytest.raises(BadInput, match="flux-schnell cannot make variations"):
        with_reference(SCHNELL, base, "https://cdn/x.png", "subtle")


def test_options_the_variation_model_does_not_take_fall_back_to_its_defaults():
    parent = {"aspect_ratio": "match_input_image", "num_outputs": 4, "output_format": "webp", "output_quality": 90}
    assert carried_options(MODELS[DEV], parent) == {"num_outputs": 4, "output_format": "webp", "output_quality": 90}
    assert carried_options(MODELS[ULTRA], parent) == {}  # no such ratio, one image, no webp, no quality
    assert carried_options(MODELS[ULTRA], {**parent, "output_format": "png", "aspect_ratio": "16:9"}) == {
        "output_format": "png",
        "aspect_ratio": "16:9",
    }


def test_a_reroll_of_a_variation_is_the_same_variation_with_a_new_seed():
    parent = Job(
        id="a" * 32, kind="variation", user_id=1, channel_id=2, guild_id=3, shard_id=0, model=DEV,
        input={"prompt": "a fox", "seed": 9, "image": "https://cdn/x.png", "prompt_strength": 0.35, "go_fast": True},
        status=JobStatus.SUCCEEDED, created_at=time.time(),
    )  # fmt: skip
    ask = reroll_ask(parent, user_id=5, channel_id=2, guild_id=3)
    assert (ask.kind.name, ask.prompt, ask.parent) == ("reroll", "a fox", parent)
    assert ask.kind.extra() == {"strength": "subtle"}
    assert ask.reused is not None
    assert ask.reused.values == ["https://cdn/x.png"]
    assert ask.given == {"model": DEV, "go_fast": True}


def test_custom_ids_name_the_image_and_strength_and_old_ones_still_match():
    job_id = "0123456789abcdef" * 2
    template = JobButton.__discord_ui_compiled_template__
    cases: list[tuple[Press, Action, str]] = [
        (Press(job_id), "reroll", f"flux:reroll:{job_id}"),
        (Press(job_id), "edit", f"flux:edit:{job_id}"),  # from before per-image buttons: still valid
        (Press(job_id, 3), "edit", f"flux:edit:{job_id}:3"),
        (Press(job_id, 2, "subtle"), "vary", f"flux:vary:{job_id}:2:subtle"),
    ]
    for press, action, expected in cases:
        assert custom_id(action, press) == expected
        match = template.fullmatch(expected)
        assert match is not None
        assert (match["action"], match["job"], match["image"], match["strength"]) == (
            action,
            job_id,
            str(press.image) if press.image else None,
            press.strength,
        )
    assert template.fullmatch(f"flux:vary:{job_id}:2:wild") is None
    # A new kind's button needs no new pattern: whatever a cog registers under its name answers it.
    upscale = template.fullmatch(f"flux:upscale:{job_id}:2")
    assert upscale is not None
    assert upscale["action"] == "upscale"
    assert template.fullmatch(f"flux:Up Scale:{job_id}:2") is None


def labels(rows: list[Row]) -> list[list[str | None]]:
    return [[item.label for item in row] for row in rows]


def test_result_buttons_for_one_several_and_no_images():
    job_id = "f" * 32
    assert labels(result_rows(job_id, 1)) == [
        ["Upscale (Subtle)", "Upscale (Creative)", "Vary (Subtle)", "Vary (Strong)"],
        ["Remix", "Edit", "Reroll"],
    ]
    assert labels(result_rows(job_id, 4)) == [
        ["U1", "U2", "U3", "U4", "Reroll"],
        ["V1", "V2", "V3", "V4"],
        ["E1", "E2", "E3", "E4"],
    ]
    assert labels(result_rows(job_id, 5))[3] == ["Reroll"]  # a full row of five: 🔄 gets a row of its own
    assert labels(result_rows(job_id, 0)) == [["Reroll"]]
    ids = [str(item.custom_id) for row in result_rows(job_id, 4) for item in row]
    assert len(ids) == len(set(ids))
    assert all(len(i) <= 100 and re.fullmatch(r"flux:\w+:[0-9a-f]{32}(:\d+(:\w+)?)?", i) for i in ids)


@pytest.mark.parametrize("images", [0, 1, 2, 4, 5])
@pytest.mark.parametrize("offered", [0, 3, 9, 30])
def test_offered_buttons_take_the_rows_left_within_discords_limits(images, offered):
    """Others' buttons (Zoom, Pan, ...) go under one image, in the rows the built-in ones leave (three rows);
    under several, U1..Un lead to them."""
    job_id = "e" * 32
    more = [f"extra{n}" for n in range(offered)]
    rows = result_rows(job_id, images, more=more)
    assert len(rows) <= 5
    assert all(1 <= len(row) <= 5 for row in rows)
    everything = [item for row in rows for item in row]
    ids = [str(item.custom_id) for item in everything]
    assert len(ids) == len(set(ids))
    extras = [n for n, row in enumerate(rows) for item in row if str(item.custom_id).startswith("flux:extra")]
    if images != 1:
        assert extras == []
    else:
        builtin_rows = {
            n for n, row in enumerate(rows) for item in row if not str(item.custom_id).startswith("flux:extra")
        }
        assert not builtin_rows & set(extras)  # rows of their own
        room = 25 - 5 * len(builtin_rows)
        assert len(extras) == min(offered, room)
    if images == 1:
        assert min(offered, 15) == len(extras)  # three whole rows for them
