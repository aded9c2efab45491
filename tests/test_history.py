"""/imagine-history: your recent jobs newest first, paged with buttons (also after a restart), the server's for
Manage Server, private answers, and a job whose message was deleted says so."""

from __future__ import annotations

import re
import time
import uuid

from cli.harness import wait_status
from services.store.models import Job, JobStatus
from tests.helpers import EPHEMERAL, add_member, history, history_lines, job_shown_in, private_reply, setup_guild

SCHNELL = "black-forest-labs/flux-schnell"
T0 = time.time() - 3600


async def stored_jobs(world, bot, guild, channel, user, count, *, prefix, start=T0, status=JobStatus.SUCCEEDED):
    """`count` finished jobs of `user`, a minute apart, each with its message; oldest first."""
    jobs = []
    for n in range(count):
        message = await world.discord.post_message(channel, world.discord.bot, f"{prefix} {n}")
        job = Job(
            id=uuid.uuid4().hex, kind="imagine", user_id=user.id, channel_id=channel.id, guild_id=guild.id,
            shard_id=0, model=SCHNELL, input={"prompt": f"{prefix} {n}", "seed": n}, status=status,
            created_at=start + 60 * n, message_id=message.id,
        )  # fmt: skip
        await bot.store.create_job(job)
        jobs.append(job)
    return jobs


def prompts(message):
    """The prompt of each line (shown in bold)."""
    return [re.findall(r"\*\*(.+?)\*\*", line)[0] for line in history_lines(message)]


def pager(message):
    return [
        (c["label"], c["custom_id"], c.get("disabled", False)) for row in message.components for c in row["components"]
    ]


async def turn(world, message, user, custom_id):
    before = len(world.discord.edits_of(message.id))
    await world.discord.click_button(message, custom_id, user)
    await world.discord.wait_for(lambda: len(world.discord.edits_of(message.id)) > before, timeout=10)
    return world.discord.message(message.id)


async def test_my_history_is_paged_newest_first_with_status_model_time_and_link(world):
    guild, channel = setup_guild(world)
    alice, bob = add_member(world, guild, "alice"), add_member(world, guild, "bob")
    async with world.bot() as bot:
        mine = await stored_jobs(world, bot, guild, channel, alice, 10, prefix="alice")
        await stored_jobs(world, bot, guild, channel, bob, 2, prefix="bob", start=T0 + 30)
        first = await history(world, guild, channel, alice)
    assert first.embeds[0]["title"] == "Your recent images"
    assert prompts(first) == [f"alice {n}" for n in range(9, 1, -1)]  # 8 a page, newest first, only hers
    newest = history_lines(first)[0]
    job = mine[9]
    assert newest.startswith("✅ done")
    assert "flux-schnell" in newest
    assert f"<t:{int(job.created_at)}:R>" in newest
    assert f"[open](https://discord.com/channels/{guild.id}/{channel.id}/{job.message_id})" in newest
    assert first.embeds[0]["footer"]["text"] == "Page 1 of 2 · 10 jobs, newest first"
    # Each button turns from the job at its end of the page.
    assert pager(first) == [
        ("◀ Newer", f"flux-history:mine:newer:0:{mine[9].created_at!r}:{mine[9].id}", True),
        ("Older ▶", f"flux-history:mine:older:1:{mine[2].created_at!r}:{mine[2].id}", False),
    ]
    # The page buttons keep working in a new process.
    async with world.bot():
        second = await turn(world, first, alice, pager(first)[1][1])
        assert prompts(second) == ["alice 1", "alice 0"]
        assert second.embeds[0]["footer"]["text"].startswith("Page 2 of 2")
        assert [(label, disabled) for label, _, disabled in pager(second)] == [("◀ Newer", False), ("Older ▶", True)]
        back = await turn(world, second, alice, pager(second)[0][1])
        assert prompts(back) == [f"alice {n}" for n in range(9, 1, -1)]


async def test_jobs_made_while_turning_pages_shift_nothing(world):
    """Pages turn from the job at the page's end: the jobs made meanwhile neither repeat a line on the next page
    nor hide one, and turning back shows the page seen, then the new jobs on a page of their own."""
    guild, channel = setup_guild(world)
    alice = add_member(world, guild, "alice")
    async with world.bot() as bot:
        await stored_jobs(world, bot, guild, channel, alice, 12, prefix="old")
        first = await history(world, guild, channel, alice)
        assert prompts(first) == [f"old {n}" for n in range(11, 3, -1)]
        await stored_jobs(world, bot, guild, channel, alice, 3, prefix="new", start=T0 + 3600)
        second = await turn(world, first, alice, pager(first)[1][1])
        assert prompts(second) == ["old 3", "old 2", "old 1", "old 0"]
        assert second.embeds[0]["footer"]["text"] == "Page 3 of 3 · 15 jobs, newest first"
        back = await turn(world, second, alice, pager(second)[0][1])
        assert prompts(back) == [f"old {n}" for n in range(11, 3, -1)]
        assert back.embeds[0]["footer"]["text"].startswith("Page 2 of 3")
        newest = await turn(world, back, alice, pager(back)[0][1])
        assert prompts(newest) == ["new 2", "new 1", "new 0"]
        assert newest.embeds[0]["footer"]["text"].startswith("Page 1 of 3")
        assert pager(newest)[0][2] is True  # nothing newer


async def test_a_page_button_of_an_older_version_turns_by_its_number(world):
    guild, channel = setup_guild(world)
    alice = add_member(world, guild, "alice")
    async with world.bot() as bot:
        await stored_jobs(world, bot, guild, channel, alice, 10, prefix="alice")
        first = await history(world, guild, channel, alice)
        for row in world.discord.message(first.id).components:  # as posted before the buttons carried a job
            for button in row["components"]:
                button["custom_id"] = ":".join(button["custom_id"].split(":")[:4])
        second = await turn(world, first, alice, "flux-history:mine:older:1")
        assert prompts(second) == ["alice 1", "alice 0"]


async def test_history_shows_real_jobs_of_every_kind_and_status(world):
    guild, channel = setup_guild(world)
    alice = add_member(world, guild, "alice")
    async with world.bot() as bot:
        handle = await world.discord.slash_command(guild, channel, alice, "imagine", {"prompt": "a red fox"})
        result = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
        parent = await wait_status(bot, (await job_shown_in(bot, result.id)).id, "succeeded")
        varied = await world.discord.click_button(result, f"flux:vary:{parent.id}:1:subtle", alice)
        child_message = await varied.wait_original(lambda m: bool(m.attachments), timeout=10)
        await wait_status(bot, (await job_shown_in(bot, child_message.id)).id, "succeeded")
        await stored_jobs(world, bot, guild, channel, alice, 1, prefix="broken", status=JobStatus.FAILED)
        shown = await history(world, guild, channel, alice)
    assert prompts(shown) == ["a red fox", "a red fox", "broken 0"]
    variation, original, failed = history_lines(shown)
    assert "🪄 variation" in variation and "flux-dev" in variation
    assert f"/{child_message.id})" in variation
    assert "✅ done" in original and f"/{result.id})" in original
    assert failed.startswith("⚠️ failed")
    assert pager(shown) == []  # one page: no buttons


async def test_a_deleted_message_is_said_to_be_deleted_and_remembered(world):
    guild, channel = setup_guild(world)
    alice = add_member(world, guild, "alice")
    async with world.bot() as bot:
        kept, deleted = await stored_jobs(world, bot, guild, channel, alice, 2, prefix="pic")
        await world.discord.delete_message(channel.id, deleted.message_id)
        shown = await history(world, guild, channel, alice)
        newest, older = history_lines(shown)
        assert "message deleted" in newest and "discord.com/channels" not in newest
        assert f"/{kept.message_id})" in older
        assert (await bot.store.get_job(deleted.id)).extra.message_deleted is True
        asked = len(world.discord.requests_matching("GET", rf"/messages/{deleted.message_id}$"))
        again = await history(world, guild, channel, alice)
        assert "message deleted" in history_lines(again)[0]
        assert len(world.discord.requests_matching("GET", rf"/messages/{deleted.message_id}$")) == asked


async def test_the_servers_history_is_for_manage_server_only(world):
    guild, channel = setup_guild(world)
    other_guild, other_channel = setup_guild(world, name="elsewhere")
    admin = add_member(world, guild, "admin", permissions=["manage_guild"])
    alice, bob = add_member(world, guild, "alice"), add_member(world, guild, "bob")
    world.discord.add_member(other_guild, alice)
    async with world.bot() as bot:
        await stored_jobs(world, bot, guild, channel, alice, 1, prefix="alice")
        await stored_jobs(world, bot, guild, channel, bob, 1, prefix="bob", start=T0 + 30)
        await stored_jobs(world, bot, other_guild, other_channel, alice, 1, prefix="elsewhere", start=T0 + 90)
        refused = await world.discord.slash_command(guild, channel, bob, "imagine-history", {"scope": "server"})
        reply = await private_reply(world, refused)
        assert reply.ephemeral
        assert "permission" in reply.text
        shown = await history(world, guild, channel, admin, scope="server")
        own = await history(world, guild, channel, alice)
    assert shown.embeds[0]["title"] == "Recent images in this server"
    assert prompts(shown) == ["bob 0", "alice 0"]  # this server's only, everyone's
    assert f"<@{bob.id}>" in history_lines(shown)[0]
    assert prompts(own) == ["elsewhere 0", "alice 0"]  # her own, from every server
    assert f"<@{alice.id}>" not in history_lines(own)[0]


async def test_an_empty_history_says_how_to_start(world):
    guild, channel = setup_guild(world)
    alice = add_member(world, guild, "alice")
    async with world.bot():
        shown = await history(world, guild, channel, alice)
    assert "No images yet" in shown.embeds[0]["description"]


def take_permissions(world, guild, user):
    """The server's managers take `user`'s role of their own (the one `member` gave) away: no Manage Server."""
    fake_guild = world.discord.guilds[guild.id]
    for role_id in fake_guild.members[user.id].role_ids:
        fake_guild.roles[role_id].permissions = 0


async def refused_privately(world, bot, click, *words):
    reply = await private_reply(world, click)
    await bot.interaction_handled(click.id)
    assert reply.flags & EPHEMERAL, reply.text
    for word in words:
        assert word in reply.text, (word, reply.text)
    return reply


async def test_a_job_made_with_a_private_reply_is_in_its_owners_history_only(world):
    d = world.discord
    # A server that turned off "Use External Apps": replies of the app installed to a user's account are private.
    guild = d.add_guild("no external apps", with_bot=False, external_apps=False)
    channel = d.add_channel(guild, "chat")
    admin = add_member(world, guild, "admin", permissions=["manage_guild"])
    alice, bob = add_member(world, guild, "alice"), add_member(world, guild, "bob")
    async with world.bot() as bot:
        made = {}
        for user, prompt in ((alice, "alice's secret fox"), (admin, "the admin's own fox")):
            handle = await d.slash_command(guild, channel, user, "imagine", {"prompt": prompt})
            final = await handle.wait_original(lambda m: bool(m.attachments), timeout=10)
            assert final.ephemeral
            made[prompt] = await wait_status(bot, (await job_shown_in(bot, final.id)).id, "succeeded")
        await stored_jobs(world, bot, guild, channel, bob, 2, prefix="bob's public", start=time.time() - 600)
        server = await history(world, guild, channel, admin, scope="server")
        own = await history(world, guild, channel, alice)
    assert made["alice's secret fox"].extra.private is True
    # The admin sees bob's public jobs and their own private one, never alice's (nor that it exists).
    assert prompts(server) == ["the admin's own fox", "bob's public 1", "bob's public 0"]
    assert server.embeds[0]["footer"]["text"] == "Page 1 of 1 · 3 jobs, newest first"
    assert "alice" not in server.embeds[0]["description"]
    assert prompts(own) == ["alice's secret fox"]


async def test_history_buttons_are_checked_again_when_pressed(world):
    guild, channel = setup_guild(world)
    admin = add_member(world, guild, "admin", permissions=["manage_guild"])
    alice, bob = add_member(world, guild, "alice"), add_member(world, guild, "bob")
    async with world.bot() as bot:
        await stored_jobs(world, bot, guild, channel, alice, 10, prefix="alice")
        server = await history(world, guild, channel, admin, scope="server")
        own = await history(world, guild, channel, alice)
        older = pager(server)[1][1]
        assert older.startswith("flux-history:server:older:1:")
        # A forged button: the page's custom id on a public message of the bot's, pressed by a member without
        # Manage Server, then by one with it (the server's history would be shown to the whole channel).
        planted = await world.discord.post_message(
            channel, world.discord.bot, "look",
            components=[{"type": 1, "components": [{"type": 2, "style": 2, "label": "more", "custom_id": older}]}],
        )  # fmt: skip
        for presser in (bob, admin):
            click = await world.discord.click_button(planted.id, older, presser)
            await refused_privately(world, bot, click, "Only the person who opened this history")
        assert world.discord.edits_of(planted.id) == []
        assert world.discord.message(planted.id).text == "look"
        # Someone else's page (as a forged interaction could reach it): neither bob's history nor alice's shown.
        mine_older = pager(own)[1][1]
        for page, presser in ((own, bob), (server, bob), (own, admin)):
            custom_id = mine_older if page is own else older
            before = len(world.discord.edits_of(page.id))
            click = await world.discord.click_button(page.id, custom_id, presser)
            await refused_privately(world, bot, click, "Only the person who opened this history")
            assert len(world.discord.edits_of(page.id)) == before
        # The admin's own page, once Manage Server is taken away: refused too.
        take_permissions(world, guild, admin)
        before = len(world.discord.edits_of(server.id))
        click = await world.discord.click_button(server.id, older, admin)
        await refused_privately(world, bot, click, "permission")
        assert len(world.discord.edits_of(server.id)) == before
        # Her own page turns for her.
        second = await turn(world, own, alice, mine_older)
        assert prompts(second) == ["alice 1", "alice 0"]
