"""Words with the same CometAPI key, end to end: ✨ Enhance on /imagine and /describe (services/jobs/words.py),
through the real bot against the fake Discord and the fake CometAPI's chat route."""

from __future__ import annotations

import time

from cli.harness import wait_status
from tests.card import card
from tests.helpers import (
    EPHEMERAL,
    assert_refused_privately,
    custom_ids,
    imagine,
    job_shown_in,
    png,
    private_reply,
    setup_guild,
)

# $1 per 1000 tokens: 1000 millionths of a dollar a token, so a chat's cost is easy to read.
PRICED = {"CHAT_PRICE_PER_1K_TOKENS": "1"}
SCHNELL = 3_000  # flux-schnell, one image


async def spend(bot, guild_id: int) -> dict[str, int]:
    """Millionths of a dollar spent in the server today, by model (what the budgets and the report count)."""
    return {row.model: row.cost_microusd for row in await bot.store.spend_since(guild_id, time.time() - 3600)}


async def finished(bot, handle):
    final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
    job = await job_shown_in(bot, final.id)
    assert job is not None
    return await wait_status(bot, job.id, "succeeded"), final


# --- ✨ Enhance ------------------------------------------------------------------------------------------------


async def test_enhance_sends_the_rewritten_prompt_shows_both_and_costs_its_tokens(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.words.queue_reply('"a red fox in a misty birch forest at dawn, soft light"', usage=(100, 50))
    async with world.bot(**PRICED) as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a fox", enhance=True)
        job, final = await finished(bot, handle)
        spent = await spend(bot, guild.id)

    [chat] = world.comet.requests_for("chat")
    assert chat.json["model"] == "gpt-5-mini"
    assert chat.json["messages"][-1] == {"role": "user", "content": "a fox"}
    [create] = world.comet.creates()
    assert create.json["input"]["prompt"] == "a red fox in a misty birch forest at dawn, soft light"
    assert "enhance" not in create.json["input"]
    assert "misty birch forest" in card(final).prompt  # the prompt used
    notes = "\n".join(card(final).notes)
    assert "Enhanced from: a fox" in notes  # and the one typed
    # The chat costs its 150 tokens at $1 per 1000, beside the image.
    assert spent == {"gpt-5-mini": 150_000, "black-forest-labs/flux-schnell": SCHNELL}
    assert job.cost_microusd == SCHNELL


async def test_enhance_in_the_prompt_text_works_too(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.words.queue_reply("a castle at dusk, volumetric light")
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a castle --enhance --ar 16:9")
        await finished(bot, handle)
    assert world.comet.requests_for("chat")[0].json["messages"][-1]["content"] == "a castle"
    [create] = world.comet.creates()
    assert create.json["input"]["prompt"] == "a castle at dusk, volumetric light"
    assert create.json["input"]["aspect_ratio"] == "16:9"


async def test_an_enhanced_prompt_with_a_blocked_word_is_refused_and_costs_no_image(world, tmp_path):
    blocked = tmp_path / "blocked.txt"
    blocked.write_text("gore\n")
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.words.queue_reply("a knight in a field of gore", usage=(40, 10))
    async with world.bot(BLOCKED_WORDS_FILE=str(blocked), **PRICED) as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a knight", enhance=True)
        text = await assert_refused_privately(world, bot, handle, alice, "enhanced prompt", "not allowed")
        assert "gore" not in text
        # No image job; the chat was made, so its tokens count, and nothing else does.
        assert await spend(bot, guild.id) == {"gpt-5-mini": 50_000}


async def test_a_failed_chat_runs_the_typed_prompt_and_says_so(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.inject("chat", status=500)
    async with world.bot(**PRICED) as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a lighthouse", enhance=True)
        _, final = await finished(bot, handle)
        spent = await spend(bot, guild.id)
    assert len(world.comet.requests_for("chat")) == 1  # a chat that may have reached the API is not repeated
    [create] = world.comet.creates()
    assert create.json["input"]["prompt"] == "a lighthouse"
    notes = "\n".join(card(final).notes)
    assert "could not be enhanced" in notes and "used as typed" in notes
    assert spent == {"gpt-5-mini": 0, "black-forest-labs/flux-schnell": SCHNELL}


async def test_a_budget_too_small_for_the_chat_refuses_before_any_chat(world):
    guild, channel, alice = setup_guild(world, "alice")
    # The chat is booked at its upper bound (its prompt and 300 answer tokens: over $0.30 at $1 per 1000).
    async with world.bot(USER_DAILY_BUDGET_USD="0.2", **PRICED) as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a fox", enhance=True)
        msg = await private_reply(world, handle)
        await bot.interaction_handled(handle.id)
        assert msg.flags & EPHEMERAL
        assert "$0.20 per day" in msg.text
        assert world.comet.requests_for("chat") == []
        assert world.comet.creates() == []
        assert await spend(bot, guild.id) == {}
        # Without ✨ the image alone fits.
        handle = await imagine(world, guild, channel, alice, prompt="a fox")
        await finished(bot, handle)


# --- /describe --------------------------------------------------------------------------------------------------

FOUR = "1. a red barn in snow\n2. **2.** a barn at dusk, oil painting\n\n3) a farm, aerial view\n4. a barn, film photo"


def test_the_numbers_of_the_prompts_are_taken_off_however_they_are_written():
    from services.jobs.words import four_prompts

    assert four_prompts(FOUR) == [
        "a red barn in snow",
        "a barn at dusk, oil painting",  # "2. **2.**": numbered twice, taken off whole
        "a farm, aerial view",
        "a barn, film photo",
    ]


async def describe(world, guild, channel, user):
    attachment = world.discord.add_attachment("photo.png", png(grey=40), "image/png")
    return await world.discord.slash_command(
        guild, channel, user, "describe", {"image": attachment["id"]}, attachments=[attachment]
    )


async def answered(handle, with_text: str = "Prompts"):
    return await handle.wait_original(lambda m: with_text in (m.text or "") and bool(m.components))


async def test_describe_answers_four_prompts_privately_with_buttons_and_costs_its_tokens(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.words.queue_reply(FOUR, usage=(900, 100))
    async with world.bot(**PRICED) as bot:
        handle = await describe(world, guild, channel, alice)
        msg = await answered(handle)
        spent = await spend(bot, guild.id)
    assert msg.flags & EPHEMERAL
    for prompt in ("a red barn in snow", "a barn at dusk, oil painting", "a farm, aerial view", "a barn, film photo"):
        assert prompt in msg.text
    ids = list(custom_ids(msg.components))
    assert [i.rsplit(":", 1)[-1] for i in ids[:4]] == ["1", "2", "3", "4"] and ids[4].startswith("flux:describe:")
    [chat] = world.comet.requests_for("chat")
    parts = chat.json["messages"][-1]["content"]
    assert chat.json["model"] == "gpt-5-mini"
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")  # the bytes, not a Discord link
    assert spent == {"gpt-5-mini": 1_000_000}  # 1000 tokens at $1 per 1000
    assert world.comet.creates() == []  # describing makes no image


async def test_describe_buttons_start_imagine_with_that_prompt_and_again_describes_anew(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.words.queue_reply(FOUR)
    world.comet.words.queue_reply("1. one\n2. two\n3. three\n4. a new fourth prompt")
    async with world.bot() as bot:
        msg = await answered(await describe(world, guild, channel, alice))
        ids = list(custom_ids(msg.components))
        click = await world.discord.click_button(msg.id, ids[2], alice)
        _, final = await finished(bot, click)
        assert not final.ephemeral  # posted like any /imagine
        [create] = world.comet.creates()
        assert create.json["input"]["prompt"] == "a farm, aerial view"

        again = await world.discord.click_button(msg.id, ids[4], alice)
        updated = await world.discord.wait_for(
            lambda: "a new fourth prompt" in (world.discord.messages[msg.id].text or ""), what="new prompts"
        )
        assert updated
        await bot.interaction_handled(again.id)
        assert len(world.comet.requests_for("chat")) == 2
        # The same image went again.
        first, second = (r.json["messages"][-1]["content"][1] for r in world.comet.requests_for("chat"))
        assert first == second


async def test_describe_with_flux_on_a_message(world):
    _, channel, alice = setup_guild(world, "alice")
    async with world.bot():
        posted = await world.discord.post_message(channel, alice, "look", files=[("me.png", png(grey=90))])
        msg = await answered(await world.discord.message_command(posted, alice, "Describe with FLUX"))
        assert msg.flags & EPHEMERAL
    assert len(world.comet.requests_for("chat")) == 1


async def test_describe_over_budget_is_refused_before_any_chat(world):
    guild, channel, alice = setup_guild(world, "alice")
    async with world.bot(USER_DAILY_BUDGET_USD="0.5", **PRICED) as bot:
        handle = await describe(world, guild, channel, alice)
        msg = await private_reply(world, handle)
        await bot.interaction_handled(handle.id)
    assert msg.flags & EPHEMERAL and "$0.50 per day" in msg.text
    assert world.comet.requests_for("chat") == []


async def test_a_failed_describe_says_so_and_costs_nothing(world):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.inject("chat", status=503)
    async with world.bot(**PRICED) as bot:
        handle = await describe(world, guild, channel, alice)
        msg = await private_reply(world, handle)
        await bot.interaction_handled(handle.id)
        assert msg.flags & EPHEMERAL and "could not be described" in msg.text
        assert await spend(bot, guild.id) == {"gpt-5-mini": 0}


# --- the rows that record a chat's cost, in both stores ----------------------------------------------------------


async def test_a_chat_row_counts_in_budgets_but_starts_no_cooldown_and_is_not_in_the_history(store):
    from services.limits import Limits
    from services.store.models import Job, JobStatus

    now = time.time()

    def row(kind: str, cost: int) -> Job:
        return Job(
            id=f"{kind[:4]}{'0' * 28}", kind=kind, user_id=7, channel_id=1, guild_id=2, shard_id=0, model="gpt-5-mini",
            input={}, status=JobStatus.SUCCEEDED, created_at=now, cost_microusd=cost,
        )  # fmt: skip

    limits = Limits(cooldown_seconds=60, jobs_in_flight=1, user_budget_day=100_000)
    assert await store.admit_job(row("describe", 60_000), limits, now=now) is None
    assert await store.recent_jobs(user_id=7, limit=10) == []
    refusal = await store.admit_job(row("enhance", 60_000), limits, now=now)
    assert refusal is not None and refusal.limit == "user_budget_day"  # judged after the cooldown: a chat starts none


async def test_describe_buttons_still_work_after_a_restart(world):
    """The four prompts and the image are kept with the describe's record, so its buttons answer in a new process."""
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.words.queue_reply(FOUR)
    world.comet.words.queue_reply("1. one\n2. two\n3. three\n4. described after the restart")
    async with world.bot():
        msg = await answered(await describe(world, guild, channel, alice))
    ids = list(custom_ids(msg.components))
    async with world.bot() as bot:
        click = await world.discord.click_button(msg.id, ids[1], alice)
        _, final = await finished(bot, click)
        [create] = world.comet.creates()
        assert create.json["input"]["prompt"] == "a barn at dusk, oil painting"
        again = await world.discord.click_button(msg.id, ids[4], alice)
        await world.discord.wait_for(
            lambda: "described after the restart" in (world.discord.messages[msg.id].text or ""),
            what="new prompts from the restarted bot",
        )
        await bot.interaction_handled(again.id)
    assert not final.ephemeral
