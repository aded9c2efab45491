"""The app installed to a user's account: used in a server that never added the bot, in a DM with the bot and
in a group DM. Where the bot is not a member everything goes through the interaction: the fake answers
Missing Access on every channel endpoint there and sends no events, so the tests also check no channel
request was even tried.
"""

from __future__ import annotations

import logging

import discord
import pytest

from cli.harness import KEY, TOKEN, wait_status
from fakes.cometapi import Outcome
from services.jobs import runner as runner_module
from services.secrets import RedactingFilter
from services.store.models import GuildSettings
from tests.card import button_rows
from tests.helpers import EPHEMERAL, custom_ids, delivered, job_shown_in, private_reply, started_job

GUILD_INSTALL, USER_INSTALL = 0, 1
GUILD, BOT_DM, PRIVATE_CHANNEL = 0, 1, 2


def foreign_server(world, **kwargs):
    """A server that never added the bot, where alice uses the app she installed to her account."""
    d = world.discord
    guild = d.add_guild("no bot here", with_bot=False, **kwargs)
    channel = d.add_channel(guild, "chat")
    alice = d.add_user("alice")
    d.add_member(guild, alice)
    return guild, channel, alice


def channel_requests(world, channel_id):
    return world.discord.requests_matching("*", rf"^/channels/{channel_id}")


async def test_commands_are_offered_to_user_installs_everywhere_and_server_settings_to_servers_only(world):
    async with world.bot():
        commands = {(c["name"], c["type"]): c for c in world.discord.commands()}
    for key in (("imagine", 1), ("imagine-prefs", 1), ("Edit with FLUX", 3)):
        assert sorted(commands[key]["integration_types"]) == [GUILD_INSTALL, USER_INSTALL], key
        assert sorted(commands[key]["contexts"]) == [GUILD, BOT_DM, PRIVATE_CHANNEL], key
    settings = commands[("imagine-settings", 1)]
    assert settings["integration_types"] == [GUILD_INSTALL]
    assert settings["contexts"] == [GUILD]


async def test_imagine_in_a_server_without_the_bot_is_delivered_through_the_interaction_alone(world):
    guild, channel, alice = foreign_server(world)
    world.comet.queue_outcome(Outcome(duration=1.2))  # long enough for progress edits
    async with world.bot() as bot:
        handle = await world.discord.slash_command(guild, channel, alice, "imagine", {"prompt": "a fox"})
        assert handle.payload["authorizing_integration_owners"] == {"1": str(alice.id)}
        final, job = await delivered(world, bot, handle)
        assert job.status == "succeeded"
        # Reroll works there too: the button's own interaction carries the new job.
        reroll_id = f"flux:reroll:{job.id}"
        assert reroll_id in list(custom_ids(final.components))
        click = await world.discord.click_button(final.id, reroll_id, alice)
        _, second = await delivered(world, bot, click)
        assert second.status == "succeeded" and second.parent_id == job.id
    assert not final.ephemeral
    assert job.reply_by is not None  # it had to end before the token expired
    assert len([e for e in world.discord.edits_of(final.id) if e.text]) >= 1  # progress shown on the way
    assert channel_requests(world, channel.id) == []
    assert world.discord.dispatched_events("GUILD_CREATE") == []  # the bot really is not in that server


async def test_imagine_in_a_dm_with_the_bot(world):
    alice = world.discord.add_user("alice")
    async with world.bot() as bot:
        handle = await world.discord.slash_command(None, None, alice, "imagine", {"prompt": "a fox"})
        assert handle.payload["context"] == BOT_DM
        _, job = await delivered(world, bot, handle)
    assert job.status == "succeeded"
    assert job.guild_id is None


async def test_imagine_in_a_group_dm_is_delivered_through_the_interaction_alone(world):
    d = world.discord
    alice, bob = d.add_user("alice"), d.add_user("bob")
    group = d.private_channel(alice, bob)
    async with world.bot() as bot:
        handle = await d.slash_command(None, group, alice, "imagine", {"prompt": "a fox", "num_outputs": 2})
        assert handle.payload["context"] == PRIVATE_CHANNEL
        _, job = await delivered(world, bot, handle)
    assert job.status == "succeeded"
    assert job.image_count == 2
    assert channel_requests(world, group.id) == []


async def test_images_over_one_message_follow_as_follow_ups_where_the_bot_is_not(world):
    guild, channel, alice = foreign_server(world)
    world.comet.queue_outcome(Outcome(file_size=30_000))
    async with world.bot() as bot:
        handle = await world.discord.slash_command(
            guild, channel, alice, "imagine", {"prompt": "two foxes", "num_outputs": 2}, attachment_size_limit=40_000
        )
        final, job = await delivered(world, bot, handle)
        [more] = await handle.wait_followups(1)
    assert job.status == "succeeded"
    assert len(final.attachments) == 1 and len(more.attachments) == 1
    assert channel_requests(world, channel.id) == []


async def test_replies_forced_private_by_the_server_still_show_the_job_in_the_users_language(world):
    guild, channel, alice = foreign_server(world, external_apps=False, locale="id")
    async with world.bot() as bot:
        handle = await world.discord.slash_command(guild, channel, alice, "imagine", {"prompt": "a fox"})
        final, job = await delivered(world, bot, handle)
    assert final.ephemeral  # Discord made it private; the bot went on through the token
    assert job.status == "succeeded"
    # Only alice sees it: in her language (English), not the server's (Indonesian).
    assert job.locale == "en-US"
    assert any(b.get("label") == "Reroll" for row in button_rows(final) for b in row)
    assert channel_requests(world, channel.id) == []


async def test_server_settings_do_not_apply_where_the_bot_is_not_a_member(world):
    guild, channel, alice = foreign_server(world)
    async with world.bot() as bot:
        # Settings stored for that server id (say, from when the bot was in it) limit nobody there now.
        only_dev = GuildSettings(
            guild.id, {"model": "black-forest-labs/flux-dev"}, ["black-forest-labs/flux-dev"], {}, 0
        )
        await bot.store.save_guild_settings(only_dev)
        handle = await world.discord.slash_command(guild, channel, alice, "imagine", {"prompt": "a fox"})
        _, job = await delivered(world, bot, handle)
    assert job.status == "succeeded"
    assert job.model == bot.settings.default_model != "black-forest-labs/flux-dev"


async def test_a_job_that_cannot_finish_before_the_token_expires_says_so_in_time(world, monkeypatch):
    guild, channel, alice = foreign_server(world)
    world.comet.queue_outcome(Outcome(status="never"))
    # The token lasts 15 minutes; make the job's deadline come one second after its interaction.
    monkeypatch.setattr(runner_module, "REPLY_MARGIN", 15 * 60 - 1.0)
    async with world.bot() as bot:
        handle = await world.discord.slash_command(guild, channel, alice, "imagine", {"prompt": "a slow fox"})
        final = await handle.wait_original(lambda m: "15 minutes" in m.text, timeout=10)
        job = await job_shown_in(bot, final.id)
        job = await wait_status(bot, job.id, "failed", "canceled", "succeeded")
    assert job.status == "failed"
    assert not handle.token_expired and not final.ephemeral
    assert world.comet.predictions[job.prediction_id].cancel_requested  # stopped, not left running and paid for
    assert list(custom_ids(final.components)) == [f"flux:reroll:{job.id}"]  # 🔄: a new click, a new token
    assert channel_requests(world, channel.id) == []


class LogLines(logging.Handler):
    """The bot's log as it would be written: through the redacting filter configure_logging installs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(RedactingFilter([TOKEN, KEY]))
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.mark.parametrize("where", ["server without the bot", "group DM"])
async def test_a_job_resumes_after_a_restart_through_the_stored_token_and_never_logs_it(world, caplog, where):
    caplog.set_level(logging.DEBUG)  # everything, libraries' debug output included
    log = LogLines()
    logging.getLogger().addHandler(log)
    if where == "group DM":
        guild, alice = None, world.discord.add_user("alice")
        channel = world.discord.private_channel(alice, world.discord.add_user("bob"))
    else:
        guild, channel, alice = foreign_server(world)
    world.comet.queue_outcome(Outcome(duration=2.0))
    try:
        async with world.bot() as bot:
            handle = await world.discord.slash_command(guild, channel, alice, "imagine", {"prompt": "a slow fox"})
            job, message = await started_job(world, bot, handle)
            job = await wait_status(bot, job.id, "running")
        # A new process: no live interaction, only what the store kept.
        async with world.bot() as bot:
            job = await wait_status(bot, job.id, "succeeded", "failed", "canceled")
    finally:
        logging.getLogger().removeHandler(log)
    assert job.status == "succeeded", job.error
    assert len(world.comet.creates()) == 1
    assert world.discord.message(message.id).attachments
    assert world.discord.requests_matching("PATCH", rf"^/webhooks/\d+/[^/]+/messages/{message.id}$")
    assert channel_requests(world, channel.id) == []
    written = "\n".join(log.lines)
    assert f"/webhooks/{world.discord.application_id}/[redacted]/messages" in written  # discord.py logs the URL
    assert handle.token not in written
    assert handle.token not in repr(job)


async def test_a_refusal_there_is_a_private_follow_up_through_the_interaction(world):
    guild, channel, alice = foreign_server(world)
    async with world.bot(MAX_JOBS_PER_USER="1") as bot:
        world.comet.queue_outcome(Outcome(status="never"))
        first = await world.discord.slash_command(guild, channel, alice, "imagine", {"prompt": "one"})
        await started_job(world, bot, first)
        second = await world.discord.slash_command(guild, channel, alice, "imagine", {"prompt": "two"})
        reply = await private_reply(world, second)
        job, message = await started_job(world, bot, first)
        click = await world.discord.click_button(message.id, f"flux:cancel:{job.id}", alice)
        await click.wait_response()
        await wait_status(bot, job.id, "canceled")
        await first.wait_original(lambda m: "🛑" in m.text)
    assert reply.flags & EPHEMERAL
    assert "already have 1 image job running" in reply.text
    assert channel_requests(world, channel.id) == []


async def test_the_fake_holds_a_user_install_to_the_interaction_and_five_follow_ups(world):
    """What the tests above lean on: where the bot is not, channel endpoints refuse and follow-ups run out."""
    guild, channel, alice = foreign_server(world)
    async with world.bot() as bot:
        handle = await world.discord.slash_command(guild, channel, alice, "imagine-prefs show", {})
        await private_reply(world, handle)
        with pytest.raises(discord.Forbidden) as refused:
            await bot.get_partial_messageable(channel.id, guild_id=guild.id).send("hello")
        assert refused.value.code == 50001  # Missing Access
        webhook = discord.Webhook.partial(world.discord.application_id, handle.token, client=bot)
        for n in range(5):
            await webhook.send(f"follow-up {n + 1}")
        with pytest.raises(discord.HTTPException) as sixth:
            await webhook.send("one too many")
        assert sixth.value.status == 400
    assert len(handle.followups()) == 5


async def stored_token(bot, job_id):
    job = await bot.store.get_job(job_id)
    assert job is not None
    return job.interaction_token


async def test_the_interaction_token_is_deleted_from_the_database_when_the_job_ends(world):
    guild, channel, alice = foreign_server(world)
    world.comet.queue_outcome(Outcome(duration=0.1))
    world.comet.queue_outcome(Outcome(status="failed", duration=0.1))
    world.comet.queue_outcome(Outcome(status="never"))
    async with world.bot() as bot:
        # Succeeded.
        handle = await world.discord.slash_command(guild, channel, alice, "imagine", {"prompt": "a fox"})
        _, job = await delivered(world, bot, handle)
        assert job.status == "succeeded"
        assert await stored_token(bot, job.id) is None
        # Failed.
        handle = await world.discord.slash_command(guild, channel, alice, "imagine", {"prompt": "a bad fox"})
        job, message = await started_job(world, bot, handle)
        assert await stored_token(bot, job.id) == handle.token  # kept while the job works
        await handle.wait_original(lambda m: "⚠️" in m.text, timeout=10)
        job = await wait_status(bot, job.id, "failed")
        assert await stored_token(bot, job.id) is None
        # Canceled.
        handle = await world.discord.slash_command(guild, channel, alice, "imagine", {"prompt": "a slow fox"})
        job, message = await started_job(world, bot, handle)
        job = await wait_status(bot, job.id, "running")
        click = await world.discord.click_button(message.id, f"flux:cancel:{job.id}", alice)
        await click.wait_response()
        await handle.wait_original(lambda m: "🛑" in m.text, timeout=10)
        job = await wait_status(bot, job.id, "canceled")
        assert await stored_token(bot, job.id) is None
    assert channel_requests(world, channel.id) == []


@pytest.mark.parametrize("end", ["failed", "canceled"])
async def test_a_job_resumed_after_a_restart_still_shows_its_end_through_the_token_it_then_deletes(world, end):
    """After a restart the stored token is the only way to the message: the end is shown with it, then it goes."""
    guild, channel, alice = foreign_server(world)
    world.comet.queue_outcome(Outcome(status="never"))
    async with world.bot() as bot:
        handle = await world.discord.slash_command(guild, channel, alice, "imagine", {"prompt": "a slow fox"})
        job, message = await started_job(world, bot, handle)
        job = await wait_status(bot, job.id, "running")
    async with world.bot() as bot:  # a new process: no live interaction, only what the store kept
        if end == "failed":
            prediction = world.comet.predictions[job.prediction_id]  # the API fails it now
            prediction.outcome, prediction.duration = Outcome(status="failed"), 0.0
        else:
            click = await world.discord.click_button(message.id, f"flux:cancel:{job.id}", alice)
            await click.wait_response()
        icon = "⚠️" if end == "failed" else "🛑"
        await handle.wait_original(lambda m: icon in m.text, timeout=10)
        job = await wait_status(bot, job.id, end)
        assert await stored_token(bot, job.id) is None
    assert world.discord.requests_matching("PATCH", rf"^/webhooks/\d+/[^/]+/messages/{message.id}$")
    assert channel_requests(world, channel.id) == []
