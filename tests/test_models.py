"""All ten FLUX models end to end through /imagine, prompt parameters, and refusals that cost nothing.

Real bot, real discord.py, fake Discord and the fake CometAPI, which knows every model's schema and answers
422 to an input the model would refuse (so a job that succeeds here sent an input the model takes).
"""

from __future__ import annotations

import re
from typing import Any

from cli.harness import FAST_POLL
from fakes.cometapi import Outcome
from services.cometapi.polling import DurationStats
from tests.card import card
from tests.helpers import (
    IMAGE_SLOTS,
    assert_refused_privately,
    delivered,
    imagine,
    png,
    private_reply,
    progress_edits,
    setup_guild,
)

BFL = "black-forest-labs"
TEN = [
    "flux-schnell", "flux-dev", "flux-pro", "flux-1.1-pro", "flux-1.1-pro-ultra", "flux-kontext-pro",
    "flux-kontext-max", "flux-2-pro", "flux-2-flex", "flux-2-dev",
]  # fmt: skip


def attach(world, count):
    """`count` uploaded PNGs, and the /imagine options that carry them."""
    files = [world.discord.add_attachment(f"ref{n}.png", png(grey=20 * n), "image/png") for n in range(count)]
    return files, {slot: f["id"] for slot, f in zip(IMAGE_SLOTS, files, strict=False)}


def references_for(model):
    return 1 if "kontext" in model else 2 if "flux-2" in model else 0


async def test_every_model_works_end_to_end_through_imagine(world):
    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot() as bot:
        for model in TEN:
            files, slots = attach(world, references_for(model))
            handle = await imagine(
                world, guild, channel, alice, prompt=f"a lighthouse ({model})", model=model, attachments=files, **slots
            )
            final, job = await delivered(world, bot, handle)
            assert job.status == "succeeded", (model, job.error)
            create = world.comet.creates()[-1]
            assert create.path == f"/replicate/v1/models/{BFL}/{model}/predictions"
            sent = create.json["input"]
            assert sent == job.input  # the stored job shows exactly what the model was sent (and took)
            assert sent["prompt"] == f"a lighthouse ({model})"
            if "flux-2" in model:
                assert sent["input_images"] == [f["url"] for f in files]  # FLUX.2: a list of references
            elif "kontext" in model:
                assert sent["input_image"] == files[0]["url"]
            else:
                assert not {"input_image", "input_images"} & set(sent)
            assert len(final.attachments) == 1
    assert [c.path.split("/")[-2] for c in world.comet.creates()] == TEN


async def test_refusals_are_private_and_cost_nothing(world):
    guild, _, alice = setup_guild(world, "alice")
    cases: list[tuple[dict[str, Any], int, str]] = [
        (
            {"model": "flux-2-pro"},
            9,
            "flux-2-pro takes up to 8 input image(s), got 9 (flux-2-flex takes up to 10)",
        ),
        ({"model": "flux-2-dev"}, 5, "flux-2-dev takes up to 4"),
        ({"model": "flux-2-dev", "resolution": "1 MP"}, 0, "flux-2-dev does not take `resolution`"),
        ({"model": "flux-2-pro", "resolution": "3 MP"}, 0, "takes resolution 1 MP, 0.5 MP, 2 MP, 4 MP"),
        ({"model": "flux-2-pro", "num_outputs": 2}, 0, "makes one image per request"),
        ({"prompt": "a fox --ar 21:9 --m flux-2-pro"}, 0, "flux-2-pro takes aspect_ratio 1:1, match_input_image"),
        ({"prompt": "a fox --m flux-2-pro --ar match_input_image"}, 0, "takes the shape of an input image"),
        ({"prompt": "a beach --no people"}, 0, "no negative prompt"),
        ({"prompt": "a beach --stylize 250"}, 0, "`--stylize` is not a parameter I know"),
        ({"prompt": "a beach --seed"}, 0, "needs a value"),
        ({"prompt": "a beach --raw"}, 0, "flux-schnell does not take `raw`"),
        ({"prompt": "--ar 16:9 --seed 3"}, 0, "prompt is empty"),
        ({"model": "flux-schnell"}, 1, "text only"),
    ]
    async with world.bot() as bot:
        for index, (options, count, message) in enumerate(cases):
            channel = world.discord.add_channel(guild, f"case-{index}")  # each refusal checked in a quiet channel
            files, slots = attach(world, count)
            asked = {"prompt": "a fox", **options, **slots}
            handle = await imagine(world, guild, channel, alice, attachments=files, **asked)
            await assert_refused_privately(world, bot, handle, alice, re.escape(message))
    assert world.comet.creates() == []


async def test_prompt_parameters_set_the_options_and_leave_the_prompt(world):
    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot() as bot:
        handle = await imagine(
            world, guild, channel, alice, prompt="a castle on a hill --ar 16:9 --seed 42 --m flux-2-dev --format png"
        )
        _, job = await delivered(world, bot, handle)
    sent = world.comet.creates()[-1]
    assert sent.path == f"/replicate/v1/models/{BFL}/flux-2-dev/predictions"
    assert sent.json["input"]["prompt"] == "a castle on a hill"
    assert (job.input["aspect_ratio"], job.input["seed"], job.input["output_format"]) == ("16:9", 42, "png")


async def test_when_a_parameter_and_an_option_disagree_the_option_wins_and_the_result_says_so(world):
    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a castle --ar 16:9 --res 2", aspect_ratio="3:2",
                               model="flux-2-pro")  # fmt: skip
        final, job = await delivered(world, bot, handle)
    assert (job.input["aspect_ratio"], job.input["resolution"]) == ("3:2", "2 MP")
    notes = card(final).notes
    assert notes == ["`--ar 16:9` in the prompt was not used: the aspect_ratio option (`3:2`) wins."]


async def test_flux_2_progress_shows_its_usual_duration_and_no_invented_percentage(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(duration=3.0, queue_time=0.0))
    async with world.bot() as bot:
        # seeded from the catalogue as in production (the test bot's own priors are made for speed)
        bot.service.stats = DurationStats(bot.settings.catalogue.typical_seconds(), FAST_POLL)
        handle = await imagine(world, guild, channel, alice, prompt="a fox", model="flux-2-pro")
        final, job = await delivered(world, bot, handle)
    edits = [e.text for e in progress_edits(world, final.id)]
    generating = [text for text in edits if "Generating" in text]
    assert generating, edits
    assert all("(usually 7–35 s)" in text for text in generating), generating
    assert not [text for text in edits if "%" in text]
    assert job.status == "succeeded"


async def test_a_refusal_at_admission_leaves_no_public_message(world):
    """A model named by the server's default (judged after the acknowledgement) is refused just as privately."""
    guild, channel, alice = setup_guild(world, "alice")
    admin = world.discord.add_user("admin")
    world.discord.add_member(guild, admin, permissions=["manage_guild"])
    async with world.bot() as bot:
        settings = await world.discord.slash_command(
            guild, world.discord.add_channel(guild, "admin"), admin, "imagine-settings set", {"model": "flux-2-dev"}
        )
        await settings.wait_response()
        files, slots = attach(world, 5)
        handle = await imagine(world, guild, channel, alice, prompt="a fox", attachments=files, **slots)
        await assert_refused_privately(world, bot, handle, alice, "flux-2-dev takes up to 4")
    assert world.comet.creates() == []


async def test_a_flux_2_run_past_its_usual_time_says_so(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.queue_outcome(Outcome(duration=4.0, queue_time=0.0))
    async with world.bot() as bot:
        bot.service.stats = DurationStats({f"{BFL}/flux-2-dev": (0.2, 1.0)}, FAST_POLL)
        handle = await imagine(world, guild, channel, alice, prompt="a fox", model="flux-2-dev")
        final, job = await delivered(world, bot, handle)
    edits = [e.text for e in progress_edits(world, final.id)]
    assert any("(longer than the usual 0.2–1.0 s)" in text for text in edits), edits
    assert job.status == "succeeded"


async def test_autocompletes_offer_what_the_chosen_model_takes(world):
    guild, channel, alice = setup_guild(world, "alice")
    d = world.discord

    async def offered(command, options, focused):
        handle = await d.autocomplete(guild, channel, alice, command, options, focused=focused)
        await handle.wait_response()
        return [c["value"] for c in handle.choices or []]

    async with world.bot():
        pro = {"prompt": "x", "model": f"{BFL}/flux-2-pro"}
        assert await offered("imagine", {**pro, "resolution": ""}, "resolution") == [
            "1 MP", "0.5 MP", "2 MP", "4 MP", "match_input_image",
        ]  # fmt: skip
        ratios = await offered("imagine", {**pro, "aspect_ratio": ""}, "aspect_ratio")
        assert "match_input_image" in ratios and "custom" not in ratios  # custom needs width/height: generate only
        assert (
            await offered("imagine", {"prompt": "x", "model": f"{BFL}/flux-2-dev", "resolution": ""}, "resolution")
            == []
        )
        blenders = await offered("blend", {"model": "flux"}, "model")
        assert blenders == [f"{BFL}/flux-2-pro", f"{BFL}/flux-2-flex", f"{BFL}/flux-2-dev"]


async def test_the_bot_runs_on_its_own_settings_catalogue(world, tmp_path):
    """MODELS_FILE shapes the running bot (its prices, its models), and a bot started after without it has the
    built-in catalogue: nothing of the first one's is left behind."""
    guild, channel, alice = setup_guild(world, "alice")
    models = tmp_path / "models.toml"
    models.write_text(
        f'[models."{BFL}/flux-schnell"]\nprice = {{ per_image = 0.001 }}\n\n[models."{BFL}/flux-dev"]\nenabled = false\n'
    )
    async with world.bot(MODELS_FILE=str(models)) as bot:
        _, job = await delivered(world, bot, await imagine(world, guild, channel, alice, prompt="a fox", num_outputs=2))
        assert (job.status, job.cost_microusd, job.settled_microusd) == ("succeeded", 2_000, 2_000)
        creates = len(world.comet.creates())
        handle = await imagine(world, guild, channel, alice, prompt="a fox", model="flux-dev")
        assert "Unknown model `flux-dev`" in (await private_reply(world, handle)).content
        await bot.interaction_handled(handle.id)
        assert len(world.comet.creates()) == creates
    async with world.bot() as bot:
        _, job = await delivered(world, bot, await imagine(world, guild, channel, alice, prompt="a fox", num_outputs=2))
        assert job.cost_microusd == 6_000  # the built-in price again
        _, job = await delivered(
            world, bot, await imagine(world, guild, channel, alice, prompt="a fox", model="flux-dev")
        )
        assert job.status == "succeeded"
