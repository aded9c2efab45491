"""A new kind of job is one module: a made-up kind ("sketch"), declared here with its admission, its button and its
words and nothing else, runs like any job (limits, one create, delivery, history) and needs no migration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cli.harness import wait_status
from services.jobs.kinds.base import Kind
from services.rules.options import RequestContext
from services.text import verbatim
from tests.card import card
from tests.helpers import custom_ids, history, history_lines, job_shown_in, result_of, setup_guild
from ui.kind_words import WORDS, Words
from ui.launch import ask_from

SCHNELL = "black-forest-labs/flux-schnell"


@dataclass(frozen=True)
class Sketch(Kind):
    """Its admission: the parent's prompt as a pencil sketch, always on flux-schnell."""

    name = "sketch"

    def prompt(self, typed: str) -> str:
        return f"{typed}, as a pencil sketch"

    def model(self, context: RequestContext) -> str:
        return SCHNELL

    def extra(self) -> dict[str, Any]:
        return {"of_image": 1}


async def test_a_made_up_kind_runs_end_to_end_with_its_button_and_words(world, monkeypatch):

    # Its words: one line of the table.
    sketch_words = Words("🖍", lead=verbatim("Sketch"), history=verbatim("sketch"), button=verbatim("Sketch"))
    monkeypatch.setitem(WORDS, "sketch", sketch_words)
    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot() as bot:
        # Its button, as its cog would register it.
        async def on_sketch(interaction, press):
            parent = await bot.store.get_job(press.job_id)
            ask = ask_from(interaction, Sketch(), str(parent.input["prompt"]), parent=parent)
            await bot.launcher.launch(interaction, ask)

        bot.job_buttons.handle("sketch", on_sketch, offer=True)
        result, parent = await result_of(world, bot, guild, channel, alice, prompt="a lighthouse", model="flux-dev")
        custom_id = f"flux:sketch:{parent.id}"
        assert custom_id in list(custom_ids(result.components))
        click = await world.discord.click_button(result.id, custom_id, alice)
        final = await click.wait_original(lambda m: bool(m.attachments), timeout=10)
        job = await wait_status(bot, (await job_shown_in(bot, final.id)).id, "succeeded")
        listed = history_lines(await history(world, guild, channel, alice))
    assert (job.kind, job.model, job.parent_id) == ("sketch", SCHNELL, parent.id)
    sent = world.comet.creates()[-1].json["input"]
    assert sent["prompt"] == job.input["prompt"] == "a lighthouse, as a pencil sketch"
    assert len(world.comet.creates()) == 2
    assert "🖍 Sketch of image 1 of [an earlier result]" in str(card(final).origin)
    assert "🖍 sketch" in listed[0]
