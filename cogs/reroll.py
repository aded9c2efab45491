"""Rerolls: the same settings with a new seed, from the 🔄 Reroll button or a 🔄/🔁 reaction on a result.

Reactions are read from raw events, so no message cache is needed and results from before a restart
work too: the job is found by message id in the store.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING, Any

import discord
from discord.ext import commands

from services.errors import BadInput
from services.jobs.admission import LimitReached
from services.jobs.kinds.reroll import reroll_ask
from services.locales import render
from services.rules.moderation import BlockedPrompt
from services.store.models import Job, JobStatus
from services.text import _
from ui.launch import age_restricted
from ui.render import STAGE_TEXT, progress_card
from ui.replies import reply_ephemeral
from ui.views import Press, progress_rows, stopped

if TYPE_CHECKING:
    from ui.flux_bot import FluxBot

log = logging.getLogger(__name__)

REROLL_EMOJI = frozenset({"🔄", "🔁"})
TAKEN = "⏳"
REFUSAL_SECONDS = 60.0  # how long a refused reaction's reply stays in the channel
COOLDOWN_REFUSAL_MIN_SECONDS = 5.0  # a cooldown's reply stays until the cooldown ends, and long enough to read


def shown_for(refusal: BadInput) -> float:
    """How long the public reply to a refused reaction stays: a cooldown's until it ends, when it no longer holds."""
    if isinstance(refusal, LimitReached) and refusal.refusal.limit == "cooldown":
        left = refusal.refusal.allowed - refusal.refusal.used
        return max(left, COOLDOWN_REFUSAL_MIN_SECONDS)
    return REFUSAL_SECONDS


class Reroll(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.job_buttons.handle("reroll", self.on_button)

    async def cog_unload(self) -> None:
        self.bot.job_buttons.forget("reroll")

    async def on_button(self, interaction: discord.Interaction[Any], press: Press) -> None:
        message_id = await self.bot.launcher.acknowledge(interaction)  # first: the store may be slow
        parent = await self.bot.store.get_job(press.job_id)
        if parent is None:
            await reply_ephemeral(interaction, _("That image is no longer in my records, so I can't reroll it."))
            return
        ask = reroll_ask(
            parent, user_id=interaction.user.id, channel_id=interaction.channel_id or 0, guild_id=interaction.guild_id,
            age_restricted=age_restricted(interaction.channel),
        )  # fmt: skip
        await self.bot.launcher.launch(interaction, ask, message_id=message_id)

    @commands.Cog.listener()
    async def on_raw_reaction_add(self, event: discord.RawReactionActionEvent) -> None:
        me = self.bot.user
        if me is None or str(event.emoji) not in REROLL_EMOJI or event.user_id == me.id:
            return
        if event.member is not None and event.member.bot:
            return
        if event.message_author_id is not None and event.message_author_id != me.id:
            return  # someone else's message: not ours to reroll
        parent = await self.bot.store.job_by_message(event.message_id)
        if parent is None or parent.status != JobStatus.SUCCEEDED:
            return
        channel = self.bot.get_partial_messageable(event.channel_id, guild_id=event.guild_id)
        result = channel.get_partial_message(event.message_id)
        with contextlib.suppress(discord.HTTPException):
            await result.add_reaction(TAKEN)  # seen and taken
        try:
            await self._reroll(event, parent, result)
        except discord.HTTPException as exc:
            log.warning("Reroll of job %s could not be posted: %s", parent.id, exc)
        finally:
            with contextlib.suppress(discord.HTTPException):
                await result.remove_reaction(TAKEN, discord.Object(me.id))

    async def _reroll(self, event: discord.RawReactionActionEvent, parent: Job, result: discord.PartialMessage) -> None:
        mentions = discord.AllowedMentions.none()
        ask = reroll_ask(
            parent, user_id=event.user_id, channel_id=event.channel_id, guild_id=event.guild_id,
            age_restricted=age_restricted(self.bot.get_channel(event.channel_id)),
        )  # fmt: skip
        try:
            admitted = await self.bot.admission.admit(ask)
        except BadInput as exc:
            # A reply in the channel, seen by all: a blocked phrase is not named there.
            reason = exc.public if isinstance(exc, BlockedPrompt) else exc.text
            refused = _("{user} can't reroll this: {reason}", user=f"<@{event.user_id}>", reason=reason)
            # A reaction has no private answer: the reply goes once it no longer helps, keeping the channel clean.
            await result.reply(render(refused, parent.locale), allowed_mentions=mentions, delete_after=shown_for(exc))
            return
        job = admitted.job
        icon, queued = STAGE_TEXT["queued"]
        # The reply is a card from the start: Discord adds the layout flag to no message that has plain content.
        first = progress_card(job, f"{icon} {render(queued, job.locale)}", progress_rows(job.id, job.locale))
        try:
            message = await result.reply(view=stopped(first), allowed_mentions=mentions)
        except discord.HTTPException:
            await self.bot.admission.withdraw(job, "its message could not be posted")
            raise
        job = await self.bot.admission.attach_message(job, message.id)
        self.bot.launcher.start(job, None, log_channel_id=admitted.log_channel_id)


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Reroll(bot))
