"""🔄 on a result: a new job with the same settings and a new seed, posted as a reply to that result.

Works from raw events, so it needs no message cache and works on results from before a restart: the job is
found by message id in the store.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

import discord
from discord.ext import commands

from services.errors import BadInput
from services.jobs.rerolls import reroll_request
from services.store.models import Job

if TYPE_CHECKING:
    from bot import FluxBot
    from cogs.imagine import Imagine

log = logging.getLogger(__name__)

REROLL_EMOJI = frozenset({"🔄", "🔁"})
TAKEN = "⏳"


class Reroll(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot

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
        if parent is None or parent.status != "succeeded":
            return
        channel = self.bot.get_partial_messageable(event.channel_id, guild_id=event.guild_id)
        result = channel.get_partial_message(event.message_id)
        with contextlib.suppress(discord.HTTPException):
            await result.add_reaction(TAKEN)  # seen and taken
        try:
            await self._start(event, parent, result)
        except discord.HTTPException as exc:
            log.warning("Reroll of job %s could not be posted: %s", parent.id, exc)
        finally:
            with contextlib.suppress(discord.HTTPException):
                await result.remove_reaction(TAKEN, discord.Object(me.id))

    async def _start(self, event: discord.RawReactionActionEvent, parent: Job, result: discord.PartialMessage) -> None:
        imagine: Imagine = self.bot.get_cog("Imagine")  # type: ignore[assignment]
        request = reroll_request(parent)
        mentions = discord.AllowedMentions.none()
        try:
            context = await imagine.context(event.guild_id, event.user_id)
            resolved = await imagine.admit(
                context, request.prompt, request.given, request.image_urls,
                user_id=event.user_id, guild_id=event.guild_id,
            )  # fmt: skip
        except BadInput as exc:
            await result.reply(f"<@{event.user_id}> can't reroll this: {exc}", allowed_mentions=mentions)
            return
        message = await result.reply("⏳ Queued", allowed_mentions=mentions)
        job = imagine.new_job("reroll", event.user_id, event.channel_id, event.guild_id, resolved, parent)
        await imagine.store_and_start(job, message.id, None, resolved)


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Reroll(bot))
