"""The fake Discord works with the real discord.py client: login, commands, interactions, gateway, faults.

Every wait has a deadline, and the bot.start() task is watched, so a broken fake fails fast instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import discord
import pytest
import yarl
from aiohttp import web
from discord import app_commands
from discord.ext import commands
from discord.gateway import DiscordWebSocket

from fakes.discord import FakeChannel, FakeDiscord, FakeGuild, FakeUser
from fakes.discord_models import API_PREFIX, JSON
from fakes.discord_openapi import request_bodies
from fakes.discord_rest import RestApi
from tests.conftest import assert_no_spec_violations

T = TypeVar("T")
AnyBot = commands.Bot | commands.AutoShardedBot
WAIT = 5.0
IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 16


# ---- a small bot exercising what the project's bot uses ----------------------------------------


@dataclass
class Probe:
    """What the bot saw, for assertions."""

    ready: asyncio.Event = field(default_factory=asyncio.Event)
    ready_count: int = 0
    resumed: int = 0
    reactions: asyncio.Queue[discord.RawReactionActionEvent] = field(default_factory=asyncio.Queue)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    on_error: Callable[[BaseException], None] | None = None

    def error(self, error: BaseException) -> None:
        self.errors.append(error)
        if self.on_error is not None:
            self.on_error(error)  # fail the test's current wait at once


class E2EBot(commands.Bot):
    probe: Probe

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        pass  # discord.py sleeps 5 s before every re-IDENTIFY (identify rate limit); not needed on loopback

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        self.probe.error(sys.exc_info()[1] or RuntimeError(event_method))


class ShardedE2EBot(commands.AutoShardedBot):
    probe: Probe

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        pass  # as above: also used between shards at startup

    async def on_error(self, event_method: str, /, *args: Any, **kwargs: Any) -> None:
        self.probe.error(sys.exc_info()[1] or RuntimeError(event_method))


class RetryView(discord.ui.View):
    def __init__(self, probe: Probe) -> None:
        super().__init__(timeout=None)
        self.probe = probe

    @discord.ui.button(label="Retry", custom_id="flux:retry", style=discord.ButtonStyle.primary)
    async def retry(self, interaction: discord.Interaction, button: discord.ui.Button[RetryView]) -> None:
        assert interaction.message is not None
        self.probe.calls.append(("retry", (interaction.user.id, interaction.message.id)))
        await interaction.response.send_message("retrying", ephemeral=True)


class FeedbackModal(discord.ui.Modal, title="Feedback"):
    text: discord.ui.TextInput[FeedbackModal] = discord.ui.TextInput(label="Your feedback", custom_id="feedback:text")
    screenshots: discord.ui.Label[FeedbackModal] = discord.ui.Label(
        text="Screenshots",
        component=discord.ui.FileUpload(custom_id="feedback:files", required=False, min_values=0, max_values=2),
    )

    def __init__(self, probe: Probe) -> None:
        super().__init__(custom_id="feedback")
        self.probe = probe

    async def on_submit(self, interaction: discord.Interaction) -> None:
        self.probe.calls.append(("feedback", self.text.value))
        assert isinstance(self.screenshots.component, discord.ui.FileUpload)
        shown = [f"{a.filename} {len(await a.read())} B" for a in self.screenshots.component.values]
        await interaction.response.send_message(
            f"thanks: {self.text.value}" + (f" ({', '.join(shown)})" if shown else "")
        )


MODELS = ["flux-dev", "flux-pro", "flux-schnell", "sdxl"]


def install_commands(bot: AnyBot, probe: Probe) -> None:
    tree = bot.tree

    @tree.command(name="upscale", description="Upscale an image")
    async def upscale(
        interaction: discord.Interaction,
        image: discord.Attachment,
        prompt: str,
        scale: app_commands.Range[int, 1, 8] = 2,
        strength: float = 0.5,
        private: bool = False,
    ) -> None:
        await interaction.response.defer(ephemeral=private, thinking=True)
        probe.calls.append(
            (
                "upscale",
                {
                    "prompt": prompt,
                    "scale": scale,
                    "strength": strength,
                    "private": private,
                    "filename": image.filename,
                    "attach_files": interaction.app_permissions.attach_files,
                    "filesize_limit": interaction.filesize_limit,
                    "shard_id": interaction.guild.shard_id if interaction.guild else None,
                },
            )
        )
        data = await image.read()  # through the fake's CDN route
        await interaction.edit_original_response(
            content=f"{prompt} x{scale} {strength}",
            attachments=[discord.File(io.BytesIO(data[::-1]), filename="out.png")],
            view=RetryView(probe),
        )

    @tree.command(name="ping", description="Ping")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=True)
    async def ping(interaction: discord.Interaction) -> None:
        probe.calls.append(("ping", (interaction.guild_id, interaction.user.id, interaction.command is not None)))
        await interaction.response.send_message("pong")

    @tree.command(name="slow", description="Defers, then follows up")
    async def slow(interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        await interaction.followup.send("done", wait=True)
        await interaction.followup.send("extra", ephemeral=True, wait=True)

    @tree.command(name="feedback", description="Send feedback")
    async def feedback(interaction: discord.Interaction) -> None:
        await interaction.response.send_modal(FeedbackModal(probe))

    settings = app_commands.Group(
        name="imagine-settings",
        description="Settings",
        default_permissions=discord.Permissions(manage_guild=True),
    )
    defaults = app_commands.Group(name="defaults", description="Defaults", parent=settings)

    @settings.command(name="set", description="Set the model")
    async def set_model(interaction: discord.Interaction, model: str, steps: int = 28) -> None:
        probe.calls.append(("set", (model, steps)))
        await interaction.response.send_message(f"model={model} steps={steps}", ephemeral=True)

    @set_model.autocomplete("model")
    async def model_choices(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=m, value=m) for m in MODELS if m.startswith(current)]

    @defaults.command(name="reset", description="Reset the defaults")
    async def reset(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("reset done")

    tree.add_command(settings)

    @tree.context_menu(name="Make variation")
    async def variation(interaction: discord.Interaction, message: discord.Message) -> None:
        await interaction.response.send_message(f"variation of {message.id}: {message.content}")

    async def on_tree_error(interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        probe.error(error)

    tree.error(on_tree_error)


def build_bot(
    cls: type[E2EBot] | type[ShardedE2EBot] = E2EBot, *, members: bool = False, **kwargs: Any
) -> tuple[AnyBot, Probe]:
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_reactions = True
    intents.members = members
    bot = cls(command_prefix=commands.when_mentioned, intents=intents, guild_ready_timeout=0.05, **kwargs)
    probe = bot.probe = Probe()
    install_commands(bot, probe)
    bot.add_view(RetryView(probe))  # persistent: matches messages from before this process started

    async def on_ready() -> None:
        probe.ready_count += 1
        probe.ready.set()

    async def on_resumed() -> None:
        probe.resumed += 1

    async def on_raw_reaction_add(payload: discord.RawReactionActionEvent) -> None:
        probe.reactions.put_nowait(payload)

    async def on_raw_reaction_remove(payload: discord.RawReactionActionEvent) -> None:
        probe.reactions.put_nowait(payload)

    for listener in (on_ready, on_resumed, on_raw_reaction_add, on_raw_reaction_remove):
        bot.add_listener(listener)
    return bot, probe


# ---- harness -----------------------------------------------------------------------------------


async def until(aw: Awaitable[T], task: asyncio.Task[None], timeout: float = WAIT) -> T:
    """Await ``aw`` but fail at once if the bot's start() task ends (a gateway parse error kills it)."""
    waiter = asyncio.ensure_future(aw)
    try:
        async with asyncio.timeout(timeout):
            done, _ = await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not waiter.done():
            waiter.cancel()
    if waiter in done:
        return waiter.result()
    task.result()  # re-raises the bot's crash
    raise AssertionError("bot.start() returned early")


async def eventually(check: Callable[[], bool], timeout: float = WAIT) -> None:
    """Poll a condition on the bot's side, which the fake cannot notify about."""
    step = 0.005
    for _ in range(int(timeout / step)):
        if check():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"condition still false after {timeout}s")


@contextlib.asynccontextmanager
async def serving(fake: FakeDiscord) -> AsyncIterator[FakeDiscord]:
    await fake.start()
    old_base, old_gateway = discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.api_base_url
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield fake
    finally:
        discord.http.Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = old_base, old_gateway
        await fake.close()
    assert fake.internal_errors == []
    assert_no_spec_violations(fake)


@contextlib.asynccontextmanager
async def running(fake: FakeDiscord, bot: AnyBot, probe: Probe) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(bot.start("fake-token"), name="bot.start")
    probe.on_error = fake.abort_waits
    fake.watch(task)
    try:
        await until(probe.ready.wait(), task)
        yield task
    finally:
        await bot.close()  # before the fake closes (gotcha 7)
        async with asyncio.timeout(WAIT):
            (outcome,) = await asyncio.gather(task, return_exceptions=True)
    if isinstance(outcome, BaseException):
        raise outcome
    assert probe.errors == []


@dataclass
class World:
    guild: FakeGuild
    channel: FakeChannel
    alice: FakeUser  # manage_guild
    bob: FakeUser  # no extra permissions
    artbot: FakeUser  # another bot posting images


@dataclass
class Harness:
    bot: AnyBot
    probe: Probe
    task: asyncio.Task[None]

    async def wait(self, aw: Awaitable[T], timeout: float = WAIT) -> T:
        return await until(aw, self.task, timeout)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with serving(FakeDiscord()) as f:
        yield f


@pytest.fixture
def world(fake: FakeDiscord) -> World:
    guild = fake.add_guild("Flux Guild")
    channel = fake.add_channel(guild, "general")
    alice, bob = fake.add_user("alice"), fake.add_user("bob")
    artbot = fake.add_user("artbot", bot=True)
    fake.add_member(guild, alice, permissions=["manage_guild", "manage_messages"])
    fake.add_member(guild, bob)
    fake.add_member(guild, artbot)
    return World(guild, channel, alice, bob, artbot)


@pytest.fixture
async def bot(fake: FakeDiscord, world: World) -> AsyncIterator[Harness]:
    client, probe = build_bot()
    async with running(fake, client, probe) as task:
        harness = Harness(client, probe, task)
        await harness.wait(client.tree.sync())
        yield harness


# ---- login and commands ------------------------------------------------------------------------


async def test_login_ready_and_sync(fake: FakeDiscord, world: World, bot: Harness) -> None:
    client = bot.bot
    assert client.user is not None and client.user.id == fake.bot.id
    assert client.application_id == fake.application_id
    guild = client.get_guild(world.guild.id)
    assert guild is not None and guild.me is not None and guild.get_channel(world.channel.id) is not None
    assert guild.default_role.permissions.view_channel
    assert guild.get_member(world.alice.id) is None  # no members intent: Discord only sends the bot's member

    (put,) = fake.requests_matching("PUT", r"^/applications/\d+/commands$")
    assert put.status == 200
    upscale = fake.command("upscale")
    assert upscale is not None
    assert {o["name"]: o["type"] for o in upscale["options"]} == {
        "image": 11,
        "prompt": 3,
        "scale": 4,
        "strength": 10,
        "private": 5,
    }
    assert fake.unhandled == []
    # the client's first heartbeat got an ACK
    await eventually(lambda: client.latency != float("inf"))


async def test_guild_commands_take_precedence(fake: FakeDiscord, world: World, bot: Harness) -> None:
    guild = discord.Object(world.guild.id)
    bot.bot.tree.copy_global_to(guild=guild)
    await bot.wait(bot.bot.tree.sync(guild=guild))
    assert fake.command("ping", guild_id=world.guild)["guild_id"] == str(world.guild.id)  # type: ignore[index]
    handle = await fake.slash_command(world.guild, world.channel, world.alice, "ping")
    assert handle.payload["data"]["guild_id"] == str(world.guild.id)
    assert (await handle.wait_response()).type == 4


async def test_slash_command_defer_and_edit_with_file(fake: FakeDiscord, world: World, bot: Harness) -> None:
    image = fake.add_attachment("in put.png", IMAGE, "image/png")
    handle = await fake.slash_command(
        world.guild,
        world.channel,
        world.alice,
        "upscale",
        {"image": image, "prompt": "a cat", "scale": 4, "strength": 0.75},
    )
    response = await handle.wait_response()
    assert response.type == 5  # deferred first
    assert handle.response_delay is not None and handle.response_delay < 3

    message = await handle.wait_original()
    assert message.content == "a cat x4 0.75"
    assert message.attachment_bytes() == [IMAGE[::-1]]
    assert not message.ephemeral and not message.loading
    (edit,) = fake.edits_of(message.id)
    assert edit.new_attachments[0].filename == "out.png" and edit.new_attachments[0].data == IMAGE[::-1]
    (patch,) = fake.requests_matching("PATCH", r"/messages/@original$")
    assert patch.files[0].data == IMAGE[::-1] and patch.interaction_id == handle.id
    assert patch.json["attachments"] == [{"id": 0, "filename": "out.png"}]
    assert any("/ephemeral-attachments/" in path for path in fake.cdn_requests)

    name, seen = bot.probe.calls[0]
    assert name == "upscale"
    assert seen["scale"] == 4 and isinstance(seen["scale"], int)
    assert seen["strength"] == 0.75 and seen["private"] is False
    assert seen["filename"] == "in_put.png" and seen["attach_files"] is True  # Discord replaces the space
    assert seen["filesize_limit"] == 10 * 1024 * 1024
    # the attachment URL the bot would post is served by the fake's CDN
    async with aiohttp.ClientSession() as session, session.get(message.attachments[0].url) as resp:
        assert resp.status == 200 and await resp.read() == IMAGE[::-1]


async def test_ephemeral_defer_keeps_flag(fake: FakeDiscord, world: World, bot: Harness) -> None:
    image = fake.add_attachment("x.png", IMAGE, "image/png")
    opts = {"image": image, "prompt": "p", "private": True}
    handle = await fake.slash_command(world.guild, world.channel, world.alice, "upscale", opts)
    message = await handle.wait_original()
    assert message.ephemeral
    assert message.attachment_bytes() == [IMAGE[::-1]]


async def test_fake_checks_options_against_the_synced_command(fake: FakeDiscord, world: World, bot: Harness) -> None:
    image = fake.add_attachment("x.png", IMAGE)
    with pytest.raises(TypeError, match="integer"):
        await fake.slash_command(
            world.guild, world.channel, world.alice, "upscale", {"image": image, "prompt": "p", "scale": "4"}
        )
    with pytest.raises(ValueError, match="max_value"):
        await fake.slash_command(
            world.guild, world.channel, world.alice, "upscale", {"image": image, "prompt": "p", "scale": 9}
        )
    with pytest.raises(ValueError, match="required option 'prompt'"):
        await fake.slash_command(world.guild, world.channel, world.alice, "upscale", {"image": image})
    with pytest.raises(LookupError, match="not synced"):
        await fake.slash_command(world.guild, world.channel, world.alice, "nope")
    with pytest.raises(PermissionError, match="default_member_permissions"):
        await fake.slash_command(world.guild, world.channel, world.bob, "imagine-settings set", {"model": "sdxl"})


async def test_followup_after_defer_edits_the_thinking_message(fake: FakeDiscord, world: World, bot: Harness) -> None:
    handle = await fake.slash_command(world.guild, world.channel, world.alice, "slow")
    (extra,) = await handle.wait_followups(1)
    original = handle.original_message()
    assert original is not None and original.content == "done" and not original.loading
    assert extra.content == "extra" and extra.ephemeral


# ---- components, modals, autocomplete, context menus, DMs ---------------------------------------


async def test_button_click_reaches_views(fake: FakeDiscord, world: World, bot: Harness) -> None:
    # a message from a previous run of the bot: only the persistent view (no message id) can answer
    row = {"type": 1, "components": [{"type": 2, "style": 1, "label": "Retry", "custom_id": "flux:retry"}]}
    old = await fake.post_message(world.channel, fake.bot, "old result", components=[row])
    click = await fake.click_button(old.id, "flux:retry", world.bob)
    assert (await click.wait_response()).type == 4
    reply = click.original_message()
    assert reply is not None and reply.ephemeral and reply.content == "retrying"
    assert click.payload["message"]["id"] == str(old.id)
    assert ("retry", (world.bob.id, old.id)) in bot.probe.calls

    # a message the bot just made, whose view discord.py keyed by the message id @original returned
    image = fake.add_attachment("x.png", IMAGE)
    handle = await fake.slash_command(
        world.guild, world.channel, world.alice, "upscale", {"image": image, "prompt": "p"}
    )
    made = await handle.wait_original()
    click2 = await fake.click_button(made.id, "flux:retry", world.alice)
    assert (await click2.wait_response()).type == 4
    with pytest.raises(LookupError):
        await fake.click_button(made.id, "no-such-button", world.alice)


async def test_autocomplete_and_subcommand_groups(fake: FakeDiscord, world: World, bot: Harness) -> None:
    ac = await fake.autocomplete(
        world.guild, world.channel, world.alice, "imagine-settings set", {"model": "flux-"}, focused="model"
    )
    assert (await ac.wait_response()).type == 8
    assert [c["value"] for c in ac.choices or []] == ["flux-dev", "flux-pro", "flux-schnell"]

    run = await fake.slash_command(
        world.guild, world.channel, world.alice, "imagine-settings", {"model": "sdxl", "steps": 4}, subcommand="set"
    )
    assert (await run.wait_response()).type == 4
    assert ("set", ("sdxl", 4)) in bot.probe.calls
    options = run.payload["data"]["options"]
    assert options[0]["type"] == 1 and options[0]["name"] == "set"

    nested = await fake.slash_command(world.guild, world.channel, world.alice, "imagine-settings defaults reset")
    assert (await nested.wait_response()).type == 4
    assert nested.payload["data"]["options"][0]["type"] == 2
    assert nested.original_message().content == "reset done"  # type: ignore[union-attr]


async def test_modal_round_trip(fake: FakeDiscord, world: World, bot: Harness) -> None:
    opened = await fake.slash_command(world.guild, world.channel, world.alice, "feedback")
    assert (await opened.wait_response()).type == 9
    assert opened.modal is not None and opened.modal["custom_id"] == "feedback"
    with pytest.raises(ValueError, match="left empty"):
        await fake.submit_modal(opened, {})
    submitted = await fake.submit_modal("feedback", {"feedback:text": "lovely"})
    assert (await submitted.wait_response()).type == 4
    assert submitted.original_message().content == "thanks: lovely"  # type: ignore[union-attr]
    # files uploaded in the form reach the bot as resolved attachments, within the form's count
    shots = [fake.add_attachment(f"shot{n}.png", IMAGE, "image/png") for n in range(3)]
    opened = await fake.slash_command(world.guild, world.channel, world.alice, "feedback")
    await opened.wait_response()
    with pytest.raises(ValueError, match="takes 0-2 files"):
        await fake.submit_modal(opened, {"feedback:text": "see", "feedback:files": shots})
    submitted = await fake.submit_modal(opened, {"feedback:text": "see", "feedback:files": shots[:2]})
    await submitted.wait_response()
    expected = f"thanks: see (shot0.png {len(IMAGE)} B, shot1.png {len(IMAGE)} B)"
    assert submitted.original_message().content == expected  # type: ignore[union-attr]


async def test_message_context_menu(fake: FakeDiscord, world: World, bot: Harness) -> None:
    art = await fake.post_message(world.channel, world.artbot, "a painting")
    handle = await fake.message_command(art.id, world.alice, "Make variation")
    assert (await handle.wait_response()).type == 4
    assert handle.original_message().content == f"variation of {art.id}: a painting"  # type: ignore[union-attr]
    assert handle.payload["data"]["type"] == 3 and handle.payload["data"]["target_id"] == str(art.id)


async def test_dm_slash_command(fake: FakeDiscord, world: World, bot: Harness) -> None:
    handle = await fake.slash_command(None, None, world.alice, "ping")
    assert (await handle.wait_response()).type == 4
    assert "user" in handle.payload and "member" not in handle.payload and handle.payload["context"] == 1
    assert ("ping", (None, world.alice.id, True)) in bot.probe.calls
    reply = handle.original_message()
    assert reply is not None and reply.guild_id is None and reply.channel_id == fake.dm_channel(world.alice).id


# ---- reactions, deletes, channel messages --------------------------------------------------------


async def test_raw_reactions_on_another_bots_message(fake: FakeDiscord, world: World, bot: Harness) -> None:
    art = await fake.post_message(world.channel, world.artbot, "art", files=[("art.png", IMAGE)])
    await fake.add_reaction(world.channel, art.id, world.alice, "🔄")
    added = await bot.wait(bot.probe.reactions.get())
    assert added.event_type == "REACTION_ADD"
    assert str(added.emoji) == "🔄" and added.user_id == world.alice.id
    assert added.message_id == art.id and added.channel_id == world.channel.id and added.guild_id == world.guild.id
    assert added.member is not None and added.member.id == world.alice.id
    assert added.message_author_id == world.artbot.id

    await fake.remove_reaction(world.channel, art.id, world.alice, "🔄")
    removed = await bot.wait(bot.probe.reactions.get())
    assert removed.event_type == "REACTION_REMOVE" and removed.user_id == world.alice.id

    # the bot reacting through REST: stored, and Discord echoes the bot's own reaction back to it
    channel = bot.bot.get_channel(world.channel.id)
    assert isinstance(channel, discord.TextChannel)
    await channel.get_partial_message(art.id).add_reaction("🔄")
    await channel.get_partial_message(art.id).add_reaction("<:flux:123456789012345678>")
    assert fake.message(art.id).reactions == {"🔄": [fake.bot.id], "flux:123456789012345678": [fake.bot.id]}
    echoed = await bot.wait(bot.probe.reactions.get())
    assert echoed.user_id == fake.bot.id


async def test_deleted_message_answers_unknown_message(fake: FakeDiscord, world: World, bot: Harness) -> None:
    channel = bot.bot.get_channel(world.channel.id)
    assert isinstance(channel, discord.TextChannel)
    sent = await channel.send("soon gone")
    await fake.delete_message(world.channel, sent.id)
    with pytest.raises(discord.NotFound) as err:
        await sent.edit(content="too late")
    assert err.value.code == 10008
    assert fake.message(sent.id).deleted
    # MESSAGE_* events need the guild_messages intent, which this bot did not ask for
    assert fake.dispatched_events("MESSAGE_DELETE") == []


async def test_multipart_messages_and_attachment_edits(fake: FakeDiscord, world: World, bot: Harness) -> None:
    channel = bot.bot.get_channel(world.channel.id)
    assert isinstance(channel, discord.TextChannel)
    a, b, c = b"first" * 10, b"second" * 10, b"third" * 10
    sent = await channel.send(
        "two files", files=[discord.File(io.BytesIO(a), "a.png"), discord.File(io.BytesIO(b), "b.png")]
    )
    assert fake.message(sent.id).attachment_bytes() == [a, b]
    edited = await sent.edit(attachments=[sent.attachments[0], discord.File(io.BytesIO(c), "c.png")])
    assert fake.message(sent.id).attachment_bytes() == [a, c]
    assert [att.filename for att in edited.attachments] == ["a.png", "c.png"]
    assert await edited.attachments[1].read() == c
    await sent.edit(content="text only")  # no attachments field: attachments stay
    assert fake.message(sent.id).attachment_bytes() == [a, c]
    assert [e.content for e in fake.edits_of(sent.id)] == ["two files", "text only"]


async def test_channel_permission_denial(fake: FakeDiscord, world: World, bot: Harness) -> None:
    fake.set_channel_permissions(world.channel, fake.bot, deny=["attach_files"])
    channel = bot.bot.get_channel(world.channel.id)
    assert isinstance(channel, discord.TextChannel)
    with pytest.raises(discord.Forbidden) as err:
        await channel.send("img", file=discord.File(io.BytesIO(IMAGE), "x.png"))
    assert err.value.code == 50013
    await channel.send("text is fine")
    # interactions tell the bot about it too
    image = fake.add_attachment("x.png", IMAGE)
    handle = await fake.slash_command(
        world.guild, world.channel, world.alice, "upscale", {"image": image, "prompt": "p"}
    )
    await handle.wait_original()
    assert bot.probe.calls[-1][1]["attach_files"] is False


# ---- gateway -----------------------------------------------------------------------------------


async def test_resume_replays_missed_events(fake: FakeDiscord, world: World, bot: Harness) -> None:
    art = await fake.post_message(world.channel, world.artbot, "art")
    session = fake.gateway_sessions[0]
    assert await fake.drop_gateway(resumable=True) == 1
    await fake.add_reaction(world.channel, art.id, world.bob, "👍")  # while the bot is away
    await fake.wait_for_gateway()
    payload = await bot.wait(bot.probe.reactions.get())
    assert payload.user_id == world.bob.id and str(payload.emoji) == "👍"
    await eventually(lambda: bot.probe.resumed == 1)
    assert fake.gateway_sessions[0] is session and session.resumes == 1
    identifies = [op for conn in fake.gateway_connections for _, op, _ in conn.received if op == 2]
    assert len(identifies) == 1
    handle = await fake.slash_command(world.guild, world.channel, world.alice, "ping")
    assert (await handle.wait_response()).type == 4


async def test_non_resumable_drop_identifies_again(fake: FakeDiscord, world: World, bot: Harness) -> None:
    first = fake.gateway_sessions[0]
    await fake.drop_gateway(resumable=False)
    (second,) = await fake.wait_for_gateway()
    assert second is not first
    await eventually(lambda: bot.probe.ready_count == 2)
    ops = [op for conn in fake.gateway_connections for _, op, _ in conn.received]
    assert ops.count(2) == 2 and ops.count(6) == 1  # identify, failed resume, identify
    handle = await fake.slash_command(world.guild, world.channel, world.alice, "ping")
    assert (await handle.wait_response()).type == 4


async def test_reconnect_opcode_resumes(fake: FakeDiscord, world: World, bot: Harness) -> None:
    await fake.drop_gateway(reconnect_op=True)
    await eventually(lambda: bot.probe.resumed == 1)
    assert fake.gateway_sessions[0].resumes == 1


async def test_autosharded_bot_gets_events_on_the_right_shard() -> None:
    fake = FakeDiscord(shard_count=2)
    guilds = [fake.add_guild(f"g{shard}", shard_id=shard) for shard in (0, 1)]
    channels = [fake.add_channel(g) for g in guilds]
    alice = fake.add_user("alice")
    for g in guilds:
        fake.add_member(g, alice)
    async with serving(fake):
        client, probe = build_bot(ShardedE2EBot)
        async with running(fake, client, probe) as task:
            sessions = await fake.wait_for_gateway()
            assert sorted(s.shard_id for s in sessions) == [0, 1]
            assert fake.requests_matching("GET", r"^/gateway/bot$")
            await until(client.tree.sync(), task)
            for guild, channel in zip(guilds, channels, strict=True):
                assert fake.shard_of(guild) == (guild.id >> 22) % 2
                image = fake.add_attachment("x.png", IMAGE)
                handle = await fake.slash_command(guild, channel, alice, "upscale", {"image": image, "prompt": "p"})
                await until(handle.wait_original(), task)
                assert probe.calls[-1][1]["shard_id"] == fake.shard_of(guild)
                event = fake.dispatched_events("INTERACTION_CREATE")[-1]
                assert event.shard_id == fake.shard_of(guild)
            await fake.drop_gateway(shard_id=1)
            await fake.wait_for_gateway()
            assert fake.gateway_sessions[1].resumes == 1 and fake.gateway_sessions[0].resumes == 0


async def test_zlib_stream_frames() -> None:
    fake = FakeDiscord(compress_gateway=True)
    fake.add_channel(fake.add_guild(), "general")
    async with serving(fake):
        client, probe = build_bot()
        async with running(fake, client, probe):
            assert fake.gateway_connections[0].compress
            assert fake.gateway_connections[0].query["compress"] == "zlib-stream"
            assert len(client.guilds) == 1


# ---- faults ------------------------------------------------------------------------------------


async def test_rate_limited_edit_is_retried(fake: FakeDiscord, world: World, bot: Harness) -> None:
    fault = fake.inject_rate_limit("PATCH", r"/messages/@original$", retry_after=0.2)
    image = fake.add_attachment("x.png", IMAGE)
    handle = await fake.slash_command(
        world.guild, world.channel, world.alice, "upscale", {"image": image, "prompt": "p"}
    )
    message = await handle.wait_original()
    assert fault.hits == 1
    first, second = fake.requests_matching("PATCH", r"/messages/@original$")
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.2
    assert second.files[0].data == IMAGE[::-1]  # the retry sent the file again
    assert message.attachment_bytes() == [IMAGE[::-1]]
    assert len(fake.edits_of(message.id)) == 1


async def test_injected_errors_reach_the_bot(fake: FakeDiscord, world: World, bot: Harness) -> None:
    channel = bot.bot.get_channel(world.channel.id)
    assert isinstance(channel, discord.TextChannel)
    fake.inject_error("POST", r"/channels/\d+/messages$", 403, 50001, "Missing Access")
    with pytest.raises(discord.Forbidden) as err:
        await channel.send("x")
    assert err.value.code == 50001
    fake.inject("POST", r"/channels/\d+/messages$", 403)
    with pytest.raises(discord.Forbidden) as err:
        await channel.send("x")
    assert err.value.code == 50013
    fake.inject_delay("POST", r"/channels/\d+/messages$", 0.1)
    sent = await channel.send("late but fine")
    assert fake.message(sent.id).content == "late but fine"


# ---- raw HTTP: error shapes, headers, control API ------------------------------------------------


async def test_http_shapes_and_control_api(fake: FakeDiscord, world: World, bot: Harness) -> None:
    fake.default_ids = {"guild_id": world.guild.id, "channel_id": world.channel.id, "user_id": world.alice.id}
    headers = {"Authorization": "Bot x"}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{fake.api_base_url}/no/such/route", headers=headers) as resp:
            assert resp.status == 404 and resp.headers["Content-Type"] == "application/json"
            assert (await resp.json())["code"] == 10000
        async with http.get(f"{fake.api_base_url}/users/@me") as resp:
            assert resp.status == 401  # bot routes need the Authorization header
        async with http.get(f"{fake.api_base_url}/users/@me", headers=headers) as resp:
            assert resp.headers["Content-Type"] == "application/json"
            assert int(resp.headers["X-RateLimit-Remaining"]) < int(resp.headers["X-RateLimit-Limit"])
            assert "X-RateLimit-Bucket" in resp.headers and "X-RateLimit-Reset-After" in resp.headers

        async with http.post(f"{fake.base_url}/_fake/slash", json={"name": "ping"}) as resp:
            assert resp.status == 200
            interaction_id = (await resp.json())["interaction_id"]
        handle = fake.interactions[int(interaction_id)]
        await handle.wait_response()
        async with http.get(f"{fake.base_url}/_fake/interactions/{interaction_id}") as resp:
            assert (await resp.json())["response_type"] == 4
        async with http.get(f"{fake.base_url}/_fake/messages") as resp:
            assert any(m["content"] == "pong" for m in await resp.json())
        async with http.get(f"{fake.base_url}/_fake/requests") as resp:
            assert any(r["path"].endswith("/callback") for r in await resp.json())


async def test_members_intent_gets_member_chunks(fake: FakeDiscord, world: World) -> None:
    client, probe = build_bot(members=True)
    async with running(fake, client, probe):
        guild = client.get_guild(world.guild.id)
        assert guild is not None and guild.chunked
        alice = guild.get_member(world.alice.id)
        assert alice is not None and alice.guild_permissions.manage_guild
        bob = guild.get_member(world.bob.id)
        assert bob is not None and not bob.guild_permissions.manage_guild


async def test_late_callback_is_an_unknown_interaction(fake: FakeDiscord, world: World, bot: Harness) -> None:
    bot.probe.on_error = None  # this test expects the bot's error
    fake.interaction_deadline = 0.0  # every callback is "after 3 s"
    handle = await fake.slash_command(world.guild, world.channel, world.alice, "ping")
    await eventually(lambda: bool(bot.probe.errors))
    error = bot.probe.errors.pop()
    assert isinstance(error, app_commands.CommandInvokeError)
    assert isinstance(error.original, discord.NotFound) and error.original.code == 10062
    assert handle.response is None


async def test_acknowledged_twice_and_expired_token(fake: FakeDiscord, world: World, bot: Harness) -> None:
    handle = await fake.slash_command(world.guild, world.channel, world.alice, "ping")
    await handle.wait_response()
    base = fake.api_base_url
    async with aiohttp.ClientSession() as http:
        callback = f"{base}/interactions/{handle.id}/{handle.token}/callback"
        async with http.post(callback, json={"type": 4, "data": {"content": "again"}}) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == 40060
        original = f"{base}/webhooks/{fake.application_id}/{handle.token}/messages/@original"
        async with http.patch(original, json={"content": "edited"}) as resp:
            assert resp.status == 200 and (await resp.json())["content"] == "edited"
        handle.expire_token()
        async with http.patch(original, json={"content": "too late"}) as resp:
            assert resp.status == 401 and (await resp.json())["code"] == 50027
    assert [e.content for e in fake.edits_of(handle.original_message_id or 0)] == ["edited"]


# ---- request bodies checked against Discord's OpenAPI description --------------------------------------------


async def send_raw(
    fake: FakeDiscord, method: str, path: str, body: Any, *, files: dict[str, bytes] | None = None
) -> tuple[int, Any]:
    """A request as a client would send it: JSON, or multipart with payload_json when there are files."""
    data: Any = None
    if files:
        data = aiohttp.FormData()
        data.add_field("payload_json", json.dumps(body), content_type="application/json")
        for n, (name, content) in enumerate(files.items()):
            data.add_field(f"files[{n}]", content, filename=name, content_type="image/png")
    async with (
        aiohttp.ClientSession(headers={"Authorization": "Bot x"}) as http,
        http.request(method, fake.api_base_url + path, json=None if files else body, data=data) as resp,
    ):
        return resp.status, await resp.json() if resp.status != 204 else None


async def answered_ping(fake: FakeDiscord, world: World) -> tuple[str, str]:
    """(callback path, webhook path) of an interaction the bot has answered; its token stays valid."""
    handle = await fake.slash_command(world.guild, world.channel, world.alice, "ping")
    await handle.wait_response()
    return f"/interactions/{handle.id}/{handle.token}/callback", f"/webhooks/{fake.application_id}/{handle.token}"


def buttons(count: int) -> list[JSON]:
    return [{"type": 2, "style": 1, "label": str(n), "custom_id": f"b{n}"} for n in range(count)]


async def test_bodies_that_fit_discords_description_pass(fake: FakeDiscord, world: World, bot: Harness) -> None:
    callback, webhook = await answered_ping(fake, world)
    anchor = await fake.post_message(world.channel, world.bob, "anchor")
    rich: JSON = {
        "content": "x" * 2000,
        "embeds": [
            {
                "title": "t" * 256,
                "color": 0xFFFFFF,
                "fields": [{"name": "n" * 256, "value": "v", "inline": True}] * 25,
                "image": {"url": "attachment://out.png"},  # not a URL Discord's "uri" format would take
            }
        ],
        "components": [{"type": 1, "components": buttons(5)}],
        "allowed_mentions": {"parse": []},
        "attachments": [{"id": 0, "filename": "out.png"}],  # a snowflake field given an integer
        "flags": "4096",  # an integer field given a string of digits
    }
    channel_message = rich | {
        "message_reference": {"message_id": anchor.id},
        "nonce": "1234",  # fits both the integer and the string shape: oneOf would refuse it, anyOf takes it
    }
    channel = f"/channels/{world.channel.id}/messages"
    status, answer = await send_raw(fake, "POST", channel, channel_message, files={"out.png": IMAGE})
    assert status == 200, answer
    status, _ = await send_raw(fake, "POST", webhook + "?wait=true", rich, files={"out.png": IMAGE})
    assert status == 200
    status, body = await send_raw(fake, "POST", callback, {"type": 4, "data": rich})
    assert (status, body["code"]) == (400, 40060)  # past the body check, refused only for being a second answer
    assert fake.spec_violations == []


LEGACY = "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2"
TEXT: JSON = {"type": 10, "content": "words"}


def card(*inside: JSON) -> JSON:
    """A container holding a text display and `inside`."""
    return {"type": 17, "components": [TEXT, *inside]}


def gallery(*urls: str) -> JSON:
    return {"type": 12, "items": [{"media": {"url": url}, "description": "alt"} for url in urls]}


def v2(body: JSON, *components: JSON) -> JSON:
    """A Components V2 message body: the flag and `components`, plus `body`."""
    return {"flags": 1 << 15, "components": list(components)} | body


REFUSED = {
    "content over 2000 in a follow-up": ("POST", "webhook", {"content": "x" * 2001}, "content", "BASE_TYPE_MAX_LENGTH"),
    "payload_json of a multipart follow-up": (
        "POST",
        "webhook+file",
        {"content": "x" * 2001, "attachments": [{"id": 0, "filename": "a.png"}]},
        "content",
        "BASE_TYPE_MAX_LENGTH",
    ),
    "embed field name over 256": (
        "POST",
        "channel",
        {"embeds": [{"fields": [{"name": "n" * 257, "value": "v"}]}]},
        "embeds.0.fields.0.name",
        "BASE_TYPE_MAX_LENGTH",
    ),
    "six buttons in an action row": (
        "PATCH",
        "original",
        {"components": [{"type": 1, "components": buttons(6)}]},
        "components.0.components",
        "BASE_TYPE_MAX_LENGTH",
    ),
    "unknown component type": (
        "POST",
        "channel",
        {"components": [{"type": 99}]},
        "components.0.type",
        "UNION_TYPE_CHOICES",
    ),
    "unknown callback type": ("POST", "callback", {"type": 42}, "type", "UNION_TYPE_CHOICES"),
    "content with the V2 flag": ("POST", "channel", v2({"content": "x"}, card()), "content", LEGACY),
    # (an edit that makes the answer, "pong", a card clears its content: see the test after this table)
    "embeds with the V2 flag": (
        "PATCH",
        "original",
        v2({"content": None, "embeds": [{"title": "t"}]}, card()),
        "embeds",
        LEGACY,
    ),
    "a gallery showing a file the message lacks": (
        "PATCH",
        "original",
        v2({"content": None}, card(gallery("attachment://nowhere.png"))),
        "components",
        "UNFURLED_MEDIA_ITEM_ATTACHMENT_NOT_FOUND",
    ),
    "a file uploaded to a V2 message and shown nowhere": (
        "POST",
        "webhook+file",
        v2({"attachments": [{"id": 0, "filename": "a.png"}]}, card()),
        "attachments",
        "MESSAGE_ATTACHMENT_NOT_REFERENCED",
    ),
    "41 components": ("POST", "channel", v2({}, *[card()] * 20, TEXT), "components", "BASE_TYPE_MAX_LENGTH"),
    "six action rows": (
        "POST",
        "channel",
        v2({}, card(*[{"type": 1, "components": buttons(1)}] * 6)),
        "components",
        "BASE_TYPE_MAX_LENGTH",
    ),
    "a layout without the V2 flag": (
        "POST",
        "channel",
        {"components": [card()]},
        "components",
        "COMPONENT_TYPE_INVALID",
    ),
    "command description over 100": (
        "PUT",
        "commands",
        [{"name": "ping", "description": "d" * 101}],
        "0.description",
        "BASE_TYPE_MAX_LENGTH",
    ),
}


async def test_a_plain_message_becomes_a_card_only_by_an_edit_that_clears_its_content(
    fake: FakeDiscord, world: World, bot: Harness
) -> None:
    _, webhook = await answered_ping(fake, world)  # answered with plain content
    status, answer = await send_raw(fake, "PATCH", webhook + "/messages/@original", v2({}, card()))
    assert (status, answer["errors"]["content"]["_errors"][0]["code"]) == (400, LEGACY), answer
    status, answer = await send_raw(fake, "PATCH", webhook + "/messages/@original", v2({"content": None}, card()))
    assert status == 200, answer
    assert fake.message(int(answer["id"])).components_v2
    fake.spec_violations.clear()  # the refusal above was asked for


async def test_a_v2_card_showing_its_files_passes_and_keeps_its_flag(
    fake: FakeDiscord, world: World, bot: Harness
) -> None:
    _, webhook = await answered_ping(fake, world)
    rows = [{"type": 1, "components": buttons(5)}] * 5
    body = v2(
        {"content": None, "attachments": [{"id": 0, "filename": "out.png"}]},
        card(gallery("attachment://out.png"), *rows),
    )
    status, answer = await send_raw(fake, "PATCH", webhook + "/messages/@original", body, files={"out.png": IMAGE})
    assert status == 200, answer
    message = fake.message(int(answer["id"]))
    assert message.components_v2 and [item.filename for item in message.gallery] == ["out.png"]
    assert message.text == "words"
    status, answer = await send_raw(fake, "PATCH", webhook + "/messages/@original", {"flags": 0, "components": []})
    assert (status, answer["errors"]["flags"]["_errors"][0]["code"]) == (
        400,
        "MESSAGE_CANNOT_REMOVE_COMPONENTS_V2_FLAG",
    )
    assert fake.spec_violations == []


@pytest.mark.parametrize(("method", "route", "body", "where", "code"), REFUSED.values(), ids=REFUSED.keys())
async def test_bodies_discord_would_refuse_get_50035_and_fail_the_test(
    fake: FakeDiscord, world: World, bot: Harness, method: str, route: str, body: Any, where: str, code: str
) -> None:
    callback, webhook = await answered_ping(fake, world)
    paths = {
        "webhook": webhook,
        "webhook+file": webhook,
        "original": webhook + "/messages/@original",
        "channel": f"/channels/{world.channel.id}/messages",
        "callback": callback,
        "commands": f"/applications/{fake.application_id}/commands",
    }
    before = [(m.id, m.content, len(m.edits)) for m in fake.messages.values()]
    files = {"a.png": IMAGE} if route.endswith("+file") else None
    status, answer = await send_raw(fake, method, paths[route], body, files=files)

    assert (status, answer["code"], answer["message"]) == (400, 50035, "Invalid Form Body")
    node = answer["errors"]
    for part in where.split("."):
        node = node[part]
    assert node["_errors"][0]["code"] == code
    assert [(v.method, v.field, v.code) for v in fake.spec_violations] == [(method, where, code)]
    assert [(m.id, m.content, len(m.edits)) for m in fake.messages.values()] == before  # refused: nothing changed
    with pytest.raises(AssertionError, match="would refuse") as failure:
        assert_no_spec_violations(fake)  # what every test using the fake runs at teardown
    assert where in str(failure.value)
    fake.spec_violations.clear()  # refused on purpose: let this test's own teardown pass


FORMS = {
    "an integer": ({"content": "x", "flags": 4}, []),
    "an integer as a string of digits": ({"content": "x", "flags": "4"}, []),
    "an integer as words": ({"content": "x", "flags": "four"}, ["BASE_TYPE_CONVERT"]),
    "a snowflake as an integer": ({"content": "x", "message_reference": {"message_id": 123}}, []),
    "a negative snowflake": ({"content": "x", "message_reference": {"message_id": -1}}, ["NUMBER_TYPE_MIN"]),
    "a snowflake of letters": ({"content": "x", "message_reference": {"message_id": "abc"}}, ["STRING_TYPE_REGEX"]),
}


@pytest.mark.parametrize(("body", "codes"), FORMS.values(), ids=FORMS.keys())
def test_integers_and_snowflakes_are_checked_in_either_form_by_both_validators(body: JSON, codes: list[str]) -> None:
    """Discord reads integers from strings of digits and snowflakes from integers: the quick check that lets most
    bodies through (jsonschema-rs, which has no custom types) agrees with jsonschema's, which says why."""
    bodies = request_bodies()
    path = "/channels/1/messages"
    operation = bodies.operation("POST", path)
    assert operation is not None and operation.quick is not None and operation.validator is not None
    assert [v.code for v in bodies.check("POST", path, body)] == codes
    assert operation.quick.is_valid(body) == (not codes)
    assert operation.validator.is_valid(body) == (not codes)


async def test_every_route_of_the_fake_is_in_the_extracted_description() -> None:
    """extract.py lists the fake's routes by hand: a route added to the fake must be added there too."""
    app = web.Application()
    RestApi(FakeDiscord()).register(app)
    missing = []
    for route in app.router.routes():
        template = route.resource.canonical if route.resource is not None else ""
        if route.method == "HEAD" or not template.startswith(API_PREFIX):
            continue
        path = re.sub(r"\{\w+\}", "1", template[len(API_PREFIX) :])
        if request_bodies().operation(route.method, path) is None:
            missing.append(f"{route.method} {template}")
    assert missing == []


async def test_an_interaction_made_long_ago_has_a_token_that_dies_15_minutes_after_it(
    fake: FakeDiscord, world: World, bot: Harness
) -> None:
    handle = await fake.slash_command(world.guild, world.channel, world.alice, "ping", created_ago=15 * 60 + 1)
    made = discord.utils.snowflake_time(handle.id)
    age = (discord.utils.utcnow() - made).total_seconds()
    assert 15 * 60 < age < 15 * 60 + 5  # what the bot reads in interaction.created_at / expires_at
    assert (await handle.wait_response()).type == 4  # the 3 s for the first answer run from the dispatch
    original = f"{fake.api_base_url}/webhooks/{fake.application_id}/{handle.token}/messages/@original"
    async with aiohttp.ClientSession() as http, http.patch(original, json={"content": "late"}) as resp:
        assert resp.status == 401 and (await resp.json())["code"] == 50027


async def test_an_enforced_nonce_gives_back_the_message_already_made(
    fake: FakeDiscord, world: World, bot: Harness
) -> None:
    channel = bot.bot.get_channel(world.channel.id)
    assert isinstance(channel, discord.TextChannel)
    first = await channel.send("one", nonce="job-1")  # discord.py sends enforce_nonce with every nonce
    again = await channel.send("one, again", nonce="job-1")
    other = await channel.send("two", nonce="job-2")
    assert again.id == first.id and again.content == "one"
    assert other.id != first.id
    assert [m.content for m in fake.messages_in(world.channel)] == ["one", "two"]


async def test_a_held_answer_comes_after_the_request_took_effect(fake: FakeDiscord, world: World, bot: Harness) -> None:
    channel = bot.bot.get_channel(world.channel.id)
    assert isinstance(channel, discord.TextChannel)
    fake.inject("POST", rf"^/channels/{world.channel.id}/messages$", None, hold=0.3)
    sending = asyncio.create_task(channel.send("made, answer held"))
    held = await fake.wait_for(lambda: next((r for r in fake.requests if r.held), None))
    assert fake.message(held.message_id or 0).content == "made, answer held"
    assert not sending.done()
    assert (await bot.wait(sending)).id == held.message_id


async def test_a_fault_for_uploads_takes_only_the_requests_that_upload_files(
    fake: FakeDiscord, world: World, bot: Harness
) -> None:
    channel = bot.bot.get_channel(world.channel.id)
    assert isinstance(channel, discord.TextChannel)
    fault = fake.inject("POST", rf"^/channels/{world.channel.id}/messages$", 403, with_files=True, times=None)
    await bot.wait(channel.send("no file"))
    assert fault.hits == 0
    with pytest.raises(discord.Forbidden):
        await bot.wait(channel.send("a file", file=discord.File(io.BytesIO(b"GIF89a"), "a.gif")))
    assert fault.hits == 1
    assert [m.content for m in fake.messages_in(world.channel)] == ["no file"]
