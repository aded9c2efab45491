"""Words with the same CometAPI key, end to end: ✨ Enhance on /imagine and /describe (services/jobs/words.py),
through the real bot against the fake Discord and the fake CometAPI's chat route."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

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
    until,
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


@pytest.mark.parametrize("answer", ["", '""', "Prompt: \u200b"])
async def test_an_empty_chat_answer_runs_the_typed_prompt_and_says_so(world, answer):
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.words.queue_reply(answer, usage=(40, 10))
    async with world.bot(**PRICED) as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a lighthouse", enhance=True)
        _, final = await finished(bot, handle)
    [create] = world.comet.creates()
    assert create.json["input"]["prompt"] == "a lighthouse"
    assert "an empty answer" in "\n".join(card(final).notes)


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


# --- ✨ Enhance pays for no chat when the image could not be made anyway ----------------------------------------

KNOWN_ANSWER = "a red fox in a misty birch forest at dawn, soft light"


async def save_server(bot, guild, allowed: list[str] | None, limits: dict[str, float | int] | None = None) -> None:
    from services.store.models import GuildSettings

    await bot.store.save_guild_settings(GuildSettings(guild.id, {}, allowed, limits or {}, time.time()))


@pytest.mark.parametrize(
    "case",
    ["aspect ratio", "model not allowed", "image to a text-only model", "safety_tolerance over the cap"],
)
async def test_enhance_of_a_request_the_image_model_refuses_sends_no_chat(world, case):
    """What refuses the image job (its options, model, input images, safety rules) is judged before the paid chat."""
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.words.queue_reply(KNOWN_ANSWER, usage=(100, 50))  # were the chat sent, it would answer
    async with world.bot(**PRICED) as bot:
        options: dict[str, Any] = {"prompt": "a fox", "enhance": True}
        attachments = []
        if case == "aspect ratio":
            options["prompt"], expected = "a fox --ar 7:3", ["7:3"]
        elif case == "model not allowed":
            await save_server(bot, guild, ["black-forest-labs/flux-dev"])
            expected = ["does not allow flux-schnell"]
        elif case == "image to a text-only model":
            attachments = [world.discord.add_attachment("photo.png", png(grey=40), "image/png")]
            options["image"], expected = attachments[0]["id"], ["from text only"]
        else:
            options.update(model="flux-1.1-pro", safety_tolerance=5)
            expected = ["safety_tolerance up to 2"]
        handle = await imagine(world, guild, channel, alice, attachments=attachments, **options)
        await assert_refused_privately(world, bot, handle, alice, *expected)
        assert world.comet.requests_for("chat") == []
        assert await spend(bot, guild.id) == {}


@pytest.mark.parametrize("limit", ["daily images", "server's daily images", "budget"])
async def test_enhance_at_a_limit_the_image_would_break_sends_no_chat(world_any_store, limit):
    """The image job's limits (quotas, the server's too, and budgets) are judged before the chat, as the job would
    be: a member at a limit pays for no chat, however often they ask."""
    world = world_any_store
    guild, channel, alice = setup_guild(world, "alice")
    world.comet.words.queue_reply(KNOWN_ANSWER, usage=(100, 50))
    settings = {
        "daily images": {"USER_DAILY_IMAGES": "1", "USER_COOLDOWN": "0"},
        "server's daily images": {"USER_COOLDOWN": "0"},
        # The chat alone (about $0.4 booked) fits, the image alone ($0.70) too, both together do not.
        "budget": {"USER_DAILY_BUDGET_USD": "1", "MODEL_PRICES": "flux-schnell=0.7", "USER_COOLDOWN": "0"},
    }[limit]
    expected = {
        "daily images": "used 1 of the 1 images",
        "server's daily images": "used 1 of your 1 images",
        "budget": r"\$1\.00 per day",
    }[limit]
    async with world.bot(**settings, **PRICED) as bot:
        if limit == "server's daily images":
            await save_server(bot, guild, None, {"images_per_user_per_day": 1})
        if limit != "budget":
            await finished(bot, await imagine(world, guild, channel, alice, prompt="a hare"))
        before = await spend(bot, guild.id)
        for _ in range(3):
            handle = await imagine(world, guild, channel, alice, prompt="a fox", enhance=True)
            msg = await private_reply(world, handle)
            await bot.interaction_handled(handle.id)
            assert msg.flags & EPHEMERAL
            assert re.search(expected, msg.text), msg.text
        assert world.comet.requests_for("chat") == []
        assert await spend(bot, guild.id) == before  # nothing booked
        assert len(world.comet.creates()) == (0 if limit == "budget" else 1)
        if limit == "budget":  # the image alone still fits
            await finished(bot, await imagine(world, guild, channel, alice, prompt="a fox"))


async def images_by_model(bot, guild_id: int) -> dict[str, int]:
    return {row.model: row.images for row in await bot.store.spend_since(guild_id, time.time() - 3600)}


@pytest.mark.parametrize("chat", ["answered", "failed", "blocked"])
async def test_enhance_within_the_last_image_of_the_quota_makes_it(world_any_store, tmp_path, chat):
    """The chat is judged with the image it is for, but holds that image only while it runs: at the last image of
    the quota the enhanced image is made (or, refused for its rewritten prompt, the image is left for another)."""
    world = world_any_store
    blocked = tmp_path / "blocked.txt"
    blocked.write_text("gore\n")
    guild, channel, alice = setup_guild(world, "alice")
    if chat == "failed":
        world.comet.inject("chat", status=500)
    else:
        world.comet.words.queue_reply(KNOWN_ANSWER if chat == "answered" else "a fox in gore", usage=(100, 50))
    limits = {"USER_DAILY_IMAGES": "1", "USER_COOLDOWN": "0", "BLOCKED_WORDS_FILE": str(blocked)}
    async with world.bot(**limits, **PRICED) as bot:
        handle = await imagine(world, guild, channel, alice, prompt="a fox", enhance=True)
        if chat == "blocked":
            await assert_refused_privately(world, bot, handle, alice, "enhanced prompt")
            await finished(bot, await imagine(world, guild, channel, alice, prompt="a fox"))  # the image is free
        else:
            job, _ = await finished(bot, handle)
            assert job.image_count == 1
        assert await images_by_model(bot, guild.id) == {"gpt-5-mini": 0, "black-forest-labs/flux-schnell": 1}
        [create] = world.comet.creates()
        assert create.json["input"]["prompt"] == (KNOWN_ANSWER if chat == "answered" else "a fox")
        # The quota is used: another ✨ request is refused before its chat.
        handle = await imagine(world, guild, channel, alice, prompt="a fox", enhance=True)
        assert "used 1 of the 1 images" in (await private_reply(world, handle)).text
        await bot.interaction_handled(handle.id)
        assert len(world.comet.requests_for("chat")) == 1


async def test_a_chat_interrupted_by_a_fault_gives_the_image_it_held_back(world):
    """A chat that ends in an unexpected error may be paid (it counts at its bound), but the image held for the job
    is given back: at the last image of the quota, the next request is made."""
    from services.jobs.words import ENHANCE_MAX_TOKENS, enhance_messages

    guild, channel, alice = setup_guild(world, "alice")

    class Broken:
        async def chat(self, model: str, messages: list[dict[str, object]], *, max_tokens: int) -> object:
            raise RuntimeError("the connection broke in an unexpected way")

    async with world.bot(USER_DAILY_IMAGES="1", USER_COOLDOWN="0", **PRICED) as bot:
        bot.admission.chat = Broken()
        handle = await imagine(world, guild, channel, alice, prompt="a fox", enhance=True)
        assert "went wrong" in (await private_reply(world, handle)).text
        await bot.interaction_handled(handle.id)
        [row] = await bot.store.spend_since(guild.id, time.time() - 3600)
        assert (row.model, row.images) == ("gpt-5-mini", 0)
        bound = bot.admission.policy.chat_price.bound(enhance_messages("a fox"), ENHANCE_MAX_TOKENS)
        assert row.cost_microusd == bound  # the chat's bound, without the image's cost
        await finished(bot, await imagine(world, guild, channel, alice, prompt="a fox"))


async def test_a_chat_its_process_left_booked_gives_back_the_image_it_held_at_the_next_housekeeping(world_any_store):
    """A process that stops during a ✨ chat (a crash, a kill) never settles its booking, which held the job's image
    and cost: the member's quota stayed used for the day. The housekeeping pass gives the image back once the chat
    is long past its time, and the chat counts at its own bound."""
    import asyncio

    from services.jobs.retention import STALE_CHAT_SECONDS, Retention, prune
    from services.jobs.words import ENHANCE_MAX_TOKENS, enhance_messages

    world = world_any_store
    guild, channel, alice = setup_guild(world, "alice")
    never = asyncio.Event()

    class Stopped:
        """The chat of a process that stopped: it never answers."""

        async def chat(self, model: str, messages: list[dict[str, object]], *, max_tokens: int) -> object:
            await never.wait()
            raise AssertionError("unreachable")

    async with world.bot(USER_DAILY_IMAGES="1", USER_COOLDOWN="0", **PRICED) as bot:
        bot.admission.chat = Stopped()
        stuck = await imagine(world, guild, channel, alice, prompt="a fox", enhance=True)
        booked = await until(lambda: images_by_model(bot, guild.id), what="the chat booked")
        assert booked == {"gpt-5-mini": 1}  # it holds the job's image: the quota is used
        retention = Retention(seconds=3600, max_bytes=None)
        await prune(bot.store, retention)  # a chat under way is left alone
        assert await images_by_model(bot, guild.id) == {"gpt-5-mini": 1}
        await prune(bot.store, retention, now=time.time() + STALE_CHAT_SECONDS + 1)
        [row] = await bot.store.spend_since(guild.id, time.time() - 3600)
        bound = bot.admission.policy.chat_price.bound(enhance_messages("a fox"), ENHANCE_MAX_TOKENS)
        assert (row.model, row.images, row.cost_microusd) == ("gpt-5-mini", 0, bound)
        await finished(bot, await imagine(world, guild, channel, alice, prompt="a fox"))  # the quota's image is free
        # The stuck request went no further than "thinking…" (its "process" stopped in the chat); a busy machine
        # may have shown that much while it was admitted.
        shown = stuck.original_message()
        assert shown is None or not (shown.edits or shown.attachments or shown.text), shown


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
