"""Checked outputs, end to end: a server that asks for it has each image checked with the moderation endpoint
outside age-restricted channels; a flagged one is a spoiler or withheld, the log channel says so, and the image
still costs what it cost (services/jobs/checks.py)."""

from __future__ import annotations

import time

from cli.harness import wait_status
from tests.card import card
from tests.helpers import custom_ids, ephemeral_text, imagine, job_shown_in, setup_guild

SCHNELL = 3_000


async def set_check(world, guild, channel, admin, mode: str, log_channel=None) -> None:
    options: dict[str, object] = {"check_images": mode}
    if log_channel is not None:
        options["log_channel"] = log_channel.id
    text = await ephemeral_text(
        await world.discord.slash_command(guild, channel, admin, "imagine-settings moderation", options)
    )
    assert "Images made outside age-restricted channels: checked" in text


async def ended(bot, handle, predicate):
    final = await handle.wait_original(predicate, timeout=10)
    job = await job_shown_in(bot, final.id)
    assert job is not None
    return await wait_status(bot, job.id, "succeeded", "failed"), final


async def spent(bot, guild_id: int) -> int:
    return sum(row.cost_microusd for row in await bot.store.spend_since(guild_id, time.time() - 3600))


def note(final) -> str:
    return "\n".join(card(final).notes)


async def test_a_flagged_image_is_posted_as_a_spoiler_logged_and_still_counted(world):
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    log_channel = world.discord.add_channel(guild, "job-log")
    world.comet.words.queue_flag({"sexual": True})  # the first image's check
    async with world.bot() as bot:
        await set_check(world, guild, channel, admin, "spoiler", log_channel)
        handle = await imagine(world, guild, channel, member, prompt="a lighthouse", num_outputs=2)
        job, final = await ended(bot, handle, lambda m: len(m.attachments) == 2)
        logged = await world.discord.wait_for(
            lambda: [m for m in world.discord.messages_in(log_channel.id) if "🚩" in (m.text or "")],
            what="the log line",
        )
        assert await spent(bot, guild.id) == 2 * SCHNELL
    names = [a.filename for a in final.attachments]
    assert names[0].startswith("SPOILER_") and not names[1].startswith("SPOILER_")
    assert [item.spoiler for item in card(final).gallery] == [True, False]  # the card blurs it too
    assert "Image 1 is behind a spoiler" in note(final) and "sexual" in note(final)
    assert job.status == "succeeded" and job.settled_microusd == 2 * SCHNELL
    checks = world.comet.requests_for("moderation")
    assert len(checks) == 2
    assert checks[0].json["model"] == "omni-moderation-latest"
    assert checks[0].json["input"][0]["image_url"]["url"].startswith("data:image/")
    assert "image 1 posted as a spoiler (sexual)" in logged[0].text


async def test_a_flagged_image_posted_alone_stays_behind_its_spoiler(world):
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    world.comet.words.queue_flag({"sexual": True})  # the first image's check
    async with world.bot() as bot:
        await set_check(world, guild, channel, admin, "spoiler")
        handle = await imagine(world, guild, channel, member, prompt="a lighthouse", num_outputs=2)
        job, final = await ended(bot, handle, lambda m: len(m.attachments) == 2)
        picked = []
        for n in (1, 2):  # U1 (flagged), U2 (not): no API call, so no new check either
            pressed = await world.discord.click_button(final, f"flux:pick:{job.id}:{n}", member)
            picked.append(await pressed.wait_original(lambda m: bool(m.attachments), timeout=10))
    assert [m.attachments[0].filename.startswith("SPOILER_") for m in picked] == [True, False]
    assert [[item.spoiler for item in card(m).gallery] for m in picked] == [[True], [False]]
    assert len(world.comet.requests_for("moderation")) == 2  # the two images of the result, once each


async def test_a_flagged_image_is_withheld_where_the_server_says_and_its_cost_counts(world):
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    world.comet.words.queue_flag({"violence": True})
    async with world.bot() as bot:
        await set_check(world, guild, channel, admin, "withhold")
        handle = await imagine(world, guild, channel, member, prompt="a lighthouse")
        job, final = await ended(bot, handle, lambda m: "not shown" in (m.text or ""))
        assert await spent(bot, guild.id) == SCHNELL
    assert final.attachments == []
    assert "violence" in final.text
    assert job.settled_microusd == SCHNELL


async def test_a_check_that_fails_counts_as_flagged(world):
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    world.comet.inject("moderation", status=400)
    async with world.bot() as bot:
        await set_check(world, guild, channel, admin, "spoiler")
        _, final = await ended(
            bot, await imagine(world, guild, channel, member, prompt="a lighthouse"), lambda m: bool(m.attachments)
        )
    assert final.attachments[0].filename.startswith("SPOILER_")
    assert "not checkable" in note(final)


async def test_age_restricted_channels_and_servers_that_did_not_ask_are_not_checked(world):
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    adult = world.discord.add_channel(guild, "adults", nsfw=True)
    world.comet.words.queue_flag()
    async with world.bot() as bot:
        _, final = await ended(
            bot, await imagine(world, guild, channel, member, prompt="a lighthouse"), lambda m: bool(m.attachments)
        )
        assert not final.attachments[0].filename.startswith("SPOILER_")
        await set_check(world, guild, channel, admin, "withhold")
        _, final = await ended(
            bot, await imagine(world, guild, adult, member, prompt="a lighthouse"), lambda m: bool(m.attachments)
        )
        assert not final.attachments[0].filename.startswith("SPOILER_")
    assert world.comet.requests_for("moderation") == []


async def test_a_variation_in_an_age_restricted_channel_is_not_checked(world):
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    adult = world.discord.add_channel(guild, "adults", nsfw=True)
    async with world.bot() as bot:
        await set_check(world, guild, channel, admin, "withhold")
        job, final = await ended(
            bot, await imagine(world, guild, adult, member, prompt="a lighthouse"), lambda m: bool(m.attachments)
        )
        pressed = await world.discord.click_button(final, f"flux:vary:{job.id}:1:strong", member)
        varied = await pressed.wait_original(lambda m: bool(m.attachments) or "not shown" in (m.text or ""), timeout=10)
    assert len(varied.attachments) == 1
    assert world.comet.requests_for("moderation") == []


async def test_a_providers_nsfw_refusal_is_a_refusal_with_a_retry_button(world):
    from fakes.cometapi import Outcome

    guild, channel, _, member = setup_guild(world, "member", admin=True)
    world.comet.queue_outcome(
        Outcome(status="failed", error="NSFW content detected. Try running it again.", duration=0.05)
    )
    async with world.bot() as bot:
        handle = await imagine(world, guild, channel, member, prompt="a lighthouse")
        job, refused = await ended(bot, handle, lambda m: "unsafe" in (m.text or "") and bool(m.components))
        assert job.status == "failed"
        assert "NSFW content detected" in refused.text and "🔄" in refused.text
        [retry] = list(custom_ids(refused.components))
        assert retry == f"flux:reroll:{job.id}"
        click = await world.discord.click_button(refused.id, retry, member)
        again, _ = await ended(bot, click, lambda m: bool(m.attachments))
    assert again.status == "succeeded" and again.parent_id == job.id
    assert len(world.comet.creates()) == 2
