"""Blocked words end to end (issue 17, part 1): every hostile spelling of a blocked phrase, through every path that
sends a prompt (/imagine, /blend and its own default prompt, the edit form from ✏️ and from "Edit with FLUX",
Vary, the Reroll button and 🔄 reactions), in servers, DMs and user installs, with the server's list and the
operator's (BLOCKED_WORDS_FILE).

Each refusal must leave no create on the fake CometAPI and no job for the member; where it answers an interaction
it is private; the 🔄 reaction's reply is public and so names no phrase. Harmless prompts that look close still go
through, unchanged. Every wait is for an event (the bot has handled the interaction or reaction), never a sleep.
"""

from __future__ import annotations

from services.jobs.kinds.blend import BLEND_PROMPT
from services.rules.catalogue import built_in, clean_prompt
from services.rules.moderation import BOT_REFUSES, BOT_REFUSES_PUBLIC, SERVER_REFUSES_PUBLIC, blocked_phrase
from services.rules.prompt_params import apply
from tests.blocked_variants import ALLOWED, BLOCKED, VARIANTS
from tests.helpers import (
    EPHEMERAL,
    add_member,
    blend,
    delivered,
    ephemeral_text,
    imagine,
    open_and_submit,
    png,
    private_reply,
    result_of,
    setup_guild,
)

SERVER_SAYS = 'This server does not allow "{}" in prompts; change the prompt and try again.'


def scene(world):
    """A server with an admin, alice (whose results are the parents) and bob (who tries the blocked prompts)."""
    guild, channel, admin, alice = setup_guild(world, "alice", admin=True)
    return guild, channel, admin, alice, add_member(world, guild, "bob")


async def block(world, guild, channel, admin, phrases=BLOCKED):
    shown = await ephemeral_text(
        await world.discord.slash_command(
            guild, channel, admin, "imagine-settings moderation", {"block": ", ".join(phrases)}
        )
    )
    assert "Blocked words and phrases" in shown


def blocked_file(tmp_path, phrases=BLOCKED):
    path = tmp_path / "blocked.txt"
    path.write_text("# the operator's list\n\n" + "\n".join(phrases) + "\n", encoding="utf-8")
    return str(path)


def phrase_in(prompt: str) -> str:
    """The blocked phrase a variant spells, as the server named it."""
    found = blocked_phrase(clean_prompt(apply(prompt, {}, built_in()).prompt), BLOCKED)
    assert found is not None, prompt
    return found


class Nothing:
    """Taken before the hostile attempts; `check()` after: nothing created, no job for `user`, no public message."""

    def __init__(self, world, bot, channel, user) -> None:
        self.world, self.bot, self.channel, self.user = world, bot, channel, user
        self.creates = len(world.comet.creates())
        self.public = self._public()

    def _public(self) -> set[int]:
        if self.channel is None:
            return set()
        return {m.id for m in self.world.discord.messages_in(self.channel) if not m.ephemeral}

    async def check(self, *, allowed_public: frozenset[int] | set[int] = frozenset()) -> None:
        assert len(self.world.comet.creates()) == self.creates, "a prediction was created"
        assert await self.bot.store.count_jobs(user_id=self.user.id) == 0, "a job was stored"
        assert self._public() - self.public - allowed_public == set(), "a public message was left"


async def refused(world, bot, handle) -> str:
    """The private answer to `handle`, once the bot has done all it was going to do about it."""
    msg = await private_reply(world, handle)
    await bot.interaction_handled(handle.id)
    assert msg.flags & EPHEMERAL, f"not private: {msg.text!r}"
    return str(msg.text)


# --- the server's list ------------------------------------------------------------------------------------------


async def test_every_variant_through_imagine_is_refused_privately_naming_the_phrase(world):
    guild, channel, admin, _, bob = scene(world)
    async with world.bot() as bot:
        await block(world, guild, channel, admin)
        nothing = Nothing(world, bot, channel, bob)
        for name, prompt in VARIANTS.items():
            text = await refused(world, bot, await imagine(world, guild, channel, bob, prompt=prompt))
            assert text == SERVER_SAYS.format(phrase_in(prompt)), name
        await nothing.check()
    assert world.comet.creates() == []


async def test_every_variant_through_blend_and_the_bots_own_blend_prompt(world):
    guild, channel, admin, _, bob = scene(world)
    async with world.bot() as bot:
        await block(world, guild, channel, admin)
        nothing = Nothing(world, bot, channel, bob)
        for name, prompt in VARIANTS.items():
            _, handle = await blend(world, guild, channel, bob, 2, prompt=prompt)
            assert await refused(world, bot, handle) == SERVER_SAYS.format(phrase_in(prompt)), name
        # The prompt the bot writes when none is given is judged like any other.
        await block(world, guild, channel, admin, ["reference images"])
        _, handle = await blend(world, guild, channel, bob, 2)
        assert await refused(world, bot, handle) == SERVER_SAYS.format("reference images")
        await nothing.check()
    assert "reference images" in BLEND_PROMPT
    assert world.comet.creates() == []


async def test_every_variant_through_the_edit_form_from_a_result_and_from_the_message_menu(world):
    guild, channel, admin, alice, bob = scene(world)
    async with world.bot() as bot:
        result, parent = await result_of(world, bot, guild, channel, alice, prompt="a cabin")
        photo = await world.discord.post_message(channel, bob, "my photo", files=[("me.png", png(grey=90))])
        await block(world, guild, channel, admin)
        nothing = Nothing(world, bot, channel, bob)
        for name, prompt in VARIANTS.items():
            click = await world.discord.click_button(result, f"flux:edit:{parent.id}", bob)
            text = await refused(world, bot, await open_and_submit(world, click, bob, prompt))
            assert text == SERVER_SAYS.format(phrase_in(prompt)), name
            menu = await world.discord.message_command(photo, bob, "Edit with FLUX")
            text = await refused(world, bot, await open_and_submit(world, menu, bob, prompt))
            assert text == SERVER_SAYS.format(phrase_in(prompt)), name
        await nothing.check()
    assert len(world.comet.creates()) == 1  # the parent's own


async def test_results_whose_prompt_is_blocked_since_are_not_varied_or_rerolled(world):
    """The prompt a variation or reroll sends is the parent's: judged again, by button and by 🔄 reaction."""
    guild, channel, admin, alice, bob = scene(world)
    async with world.bot() as bot:
        parents = {name: await result_of(world, bot, guild, channel, alice, prompt=p) for name, p in VARIANTS.items()}
        await block(world, guild, channel, admin)
        nothing = Nothing(world, bot, channel, bob)
        replies = set()
        for name, (result, parent) in parents.items():
            said = SERVER_SAYS.format(phrase_in(VARIANTS[name]))
            for button in (f"flux:vary:{parent.id}:1:subtle", f"flux:reroll:{parent.id}"):
                handle = await world.discord.click_button(result, button, bob)
                assert await refused(world, bot, handle) == said, (name, button)
            reply = await reaction_reply(world, bot, channel, result, bob)
            assert reply.text == f"<@{bob.id}> can't reroll this: {SERVER_REFUSES_PUBLIC}", name
            replies.add(reply.id)
        await nothing.check(allowed_public=replies)
    assert len(world.comet.creates()) == len(VARIANTS)  # the parents' own


async def reaction_reply(world, bot, channel, result, user):
    """The bot's public reply to `user`'s 🔄 on `result`, once the bot has handled the reaction."""
    await world.discord.add_reaction(channel, result.id, user, "🔄")
    await bot.reaction_handled(result.id, user.id, "🔄")
    [reply] = [
        m for m in world.discord.messages_in(channel) if (m.message_reference or {}).get("message_id") == str(result.id)
    ]
    # Seen by everyone in the channel: it names no blocked phrase in any spelling.
    assert blocked_phrase(reply.text, BLOCKED) is None, reply.text
    return reply


async def test_allowed_look_alikes_and_other_scripts_go_through_unchanged(world):
    guild, channel, admin, _, bob = scene(world)
    async with world.bot() as bot:
        await block(world, guild, channel, admin)
        for prompt in ALLOWED.values():
            await delivered(world, bot, await imagine(world, guild, channel, bob, prompt=prompt))
    assert [c.json["input"]["prompt"] for c in world.comet.creates()] == list(ALLOWED.values())


# --- the operator's list ----------------------------------------------------------------------------------------


async def test_the_operators_list_applies_in_dms_user_installs_and_every_server_and_is_never_named(world, tmp_path):
    d = world.discord
    guild, channel, _, alice, bob = scene(world)  # a server with no list of its own
    foreign = d.add_guild("no bot here", with_bot=False)
    foreign_channel = d.add_channel(foreign, "chat")
    d.add_member(foreign, bob)
    places = {"dm": (None, None), "user install": (foreign, foreign_channel), "server": (guild, channel)}
    async with world.bot() as bot:  # results made before the operator blocked anything
        result, parent = await result_of(world, bot, guild, channel, alice, prompt="a nud\u0435 portrait")
    async with world.bot(BLOCKED_WORDS_FILE=blocked_file(tmp_path)) as bot:
        nothing = Nothing(world, bot, channel, bob)
        for where, (in_guild, in_channel) in places.items():
            for name, prompt in VARIANTS.items():
                handle = await imagine(world, in_guild, in_channel, bob, prompt=prompt)
                await handle.wait_response()
                assert handle.response_type == 4, "refused at once, before any public thinking…"
                assert await refused(world, bot, handle) == str(BOT_REFUSES), (where, name)
        click = await world.discord.click_button(result, f"flux:reroll:{parent.id}", bob)
        assert await refused(world, bot, click) == str(BOT_REFUSES)
        reply = await reaction_reply(world, bot, channel, result, bob)
        assert reply.text == f"<@{bob.id}> can't reroll this: {BOT_REFUSES_PUBLIC}"
        await nothing.check(allowed_public={reply.id})
    assert blocked_phrase(str(BOT_REFUSES), BLOCKED) is None
    assert len(world.comet.creates()) == 1  # the parent's own


async def test_the_operators_list_lets_other_prompts_through(world, tmp_path):
    alice = world.discord.add_user("alice")
    async with world.bot(BLOCKED_WORDS_FILE=blocked_file(tmp_path)) as bot:
        for prompt in ALLOWED.values():
            await delivered(world, bot, await imagine(world, None, None, alice, prompt=prompt))
    assert [c.json["input"]["prompt"] for c in world.comet.creates()] == list(ALLOWED.values())
