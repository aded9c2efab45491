"""Moderation: blocked words and phrases, permissive safety settings only in age-restricted channels and within the
server's maximum, and the job log channel. Every refusal is private and sends nothing to CometAPI."""

from __future__ import annotations

import pytest

from services.errors import BadInput
from services.rules.moderation import Moderation, apply_safety, blocked_after, blocked_phrase
from tests.helpers import EPHEMERAL, ephemeral_text, imagine, private_reply, setup_guild

PRO = "flux-1.1-pro"


# --- the rules ------------------------------------------------------------------------------------------------


def test_blocked_phrases_match_whole_words_in_any_case_and_spacing():
    words = ("red fox", "gore")
    assert blocked_phrase("A  RED\tFox at dawn", words) == "red fox"
    assert blocked_phrase("ｇｏｒｅ everywhere", words) == "gore"  # full-width letters fold to plain ones
    assert blocked_phrase("gore.", words) == "gore"
    assert blocked_phrase("a gorey tale", words) is None  # not inside another word
    assert blocked_phrase("Gregory's red foxglove", words) is None


def test_the_blocked_list_is_edited_by_comma_separated_phrases():
    words = blocked_after((), add="dragon, Red  Fox ,", remove=None)
    assert words == ("dragon", "Red Fox")
    assert blocked_after(words, add="DRAGON", remove="red fox") == ("dragon",)
    with pytest.raises(BadInput, match="at most 100 characters"):
        blocked_after((), add="x" * 101, remove=None)


def test_permissive_settings_only_in_age_restricted_channels_and_within_the_server_maximum():
    strict, open_ = Moderation(), Moderation(max_safety_tolerance=5)
    # not asked for: the model's default is lowered to what the channel allows, quietly
    assert apply_safety({"safety_tolerance": 2}, {}, Moderation(max_safety_tolerance=1), age_restricted=True) == {
        "safety_tolerance": 1
    }
    with pytest.raises(BadInput, match="only allowed in age-restricted channels"):
        apply_safety({"safety_tolerance": 4}, {"safety_tolerance": 4}, open_, age_restricted=False)
    with pytest.raises(BadInput, match="up to 2"):
        apply_safety({"safety_tolerance": 4}, {"safety_tolerance": 4}, strict, age_restricted=True)
    assert (
        apply_safety({"safety_tolerance": 5}, {"safety_tolerance": 5}, open_, age_restricted=True)["safety_tolerance"]
        == 5
    )
    checker_off = {"disable_safety_checker": True}
    with pytest.raises(BadInput, match="only allowed in age-restricted channels"):
        apply_safety(checker_off, checker_off, open_, age_restricted=False)
    with pytest.raises(BadInput, match="does not allow turning the safety checker off"):
        apply_safety(checker_off, checker_off, strict, age_restricted=True)
    assert apply_safety(checker_off, checker_off, open_, age_restricted=True) == checker_off


# --- end to end -----------------------------------------------------------------------------------------------


@pytest.fixture
def world(world_any_store):
    return world_any_store


async def refused(world, handle) -> str:
    reply = await private_reply(world, handle)
    assert reply.flags & EPHEMERAL, reply.text
    public = [m for m in world.discord.messages_in(handle.channel_id) if not m.ephemeral and not m.attachments]
    assert public == [], [m.text for m in public]
    return str(reply.text)


async def moderation(world, guild, channel, admin, **options) -> str:
    return await ephemeral_text(
        await world.discord.slash_command(guild, channel, admin, "imagine-settings moderation", options)
    )


async def test_a_prompt_with_a_blocked_phrase_is_refused_and_nothing_is_sent(world):
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    async with world.bot() as bot:
        shown = await moderation(world, guild, channel, admin, block="red fox, gore")
        assert 'Blocked words and phrases: "red fox", "gore"' in shown
        text = await refused(world, await imagine(world, guild, channel, member, prompt="a Red  FOX in the snow"))
        assert text == 'This server does not allow "red fox" in prompts; change the prompt and try again.'
        assert await bot.store.count_jobs(user_id=member.id) == 0
        # the list is edited: one phrase unblocked, the other still refused
        await moderation(world, guild, channel, admin, unblock="red fox")
        handle = await imagine(world, guild, channel, member, prompt="a red fox, gore")
        assert "gore" in await refused(world, handle)
    assert world.comet.creates() == []


async def test_permissive_safety_settings_only_in_age_restricted_channels(world):
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    adults = world.discord.add_channel(guild, "after-dark", nsfw=True)
    async with world.bot():
        # The server allows nothing above the default yet: refused even in the age-restricted channel.
        handle = await imagine(world, guild, adults, member, prompt="a storm", model=PRO, safety_tolerance=5)
        assert await refused(world, handle) == "This server allows safety_tolerance up to 2 here; you asked for 5."
        shown = await moderation(world, guild, channel, admin, max_safety_tolerance=5)
        assert "Highest safety_tolerance: 5 in age-restricted channels, 2 elsewhere" in shown
        handle = await imagine(world, guild, channel, member, prompt="a storm", model=PRO, safety_tolerance=5)
        assert "only allowed in age-restricted channels" in await refused(world, handle)
        assert world.comet.creates() == []

        handle = await imagine(world, guild, adults, member, prompt="a storm", model=PRO, safety_tolerance=5)
        await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
    [create] = world.comet.creates()
    assert create.json["input"]["safety_tolerance"] == 5


async def test_each_job_is_recorded_in_the_log_channel(world):
    guild, channel, admin, member = setup_guild(world, "member", admin=True)
    log_channel = world.discord.add_channel(guild, "bot-log")
    async with world.bot():
        shown = await moderation(world, guild, channel, admin, log_channel=log_channel.id)
        assert f"Job log channel: <#{log_channel.id}>" in shown
        handle = await imagine(world, guild, channel, member, prompt="a *lighthouse* @everyone", num_outputs=2)
        final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        [line] = await world.discord.wait_for(
            lambda: world.discord.messages_in(log_channel) or None, timeout=5, what="the log line"
        )
        await moderation(world, guild, channel, admin, stop_logging=True)
        second = await imagine(world, guild, channel, member, prompt="not logged")
        await second.wait_original(lambda m: bool(m.attachments), timeout=10)
    assert line.text == (
        f"<@{member.id}> · imagine · flux-schnell · about $0.006 · "
        f"https://discord.com/channels/{guild.id}/{channel.id}/{final.id}\n> a \\*lighthouse\\* @everyone"
    )
    assert len(world.discord.messages_in(log_channel)) == 1
