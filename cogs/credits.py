"""/imagine-credits and the entitlement events: credits people buy through Discord (off unless the operator names
SKUs; services/jobs/credits.py does the bookkeeping)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from services.money import dollars
from services.store.models import Job
from services.text import Text, _, _n, joined
from ui.credits import credit_interaction, grant_of, premium_view
from ui.replies import reply_ephemeral

if TYPE_CHECKING:
    from ui.flux_bot import FluxBot

Interaction = discord.Interaction[Any]
RECENT = 10  # spending lines shown


class Credits(commands.Cog):
    def __init__(self, bot: FluxBot) -> None:
        self.bot = bot

    @commands.Cog.listener()
    async def on_entitlement_create(self, entitlement: discord.Entitlement) -> None:
        if self.bot.credits is not None:
            await self.bot.credits.received(grant_of(entitlement))

    @commands.Cog.listener()
    async def on_entitlement_update(self, entitlement: discord.Entitlement) -> None:
        if self.bot.credits is not None:
            await self.bot.credits.updated(grant_of(entitlement))

    @commands.Cog.listener()
    async def on_entitlement_delete(self, entitlement: discord.Entitlement) -> None:
        if self.bot.credits is not None:
            await self.bot.credits.taken_back(grant_of(entitlement))

    @app_commands.command(name="imagine-credits", description="Your credits and what they paid for")
    async def show(self, interaction: Interaction) -> None:
        ledger = self.bot.credits
        if ledger is None:
            await reply_ephemeral(interaction, _("This bot does not sell credits; images are free to make here."))
            return
        if interaction.entitlements:  # crediting one calls Discord (the consume): answer within the 3 s first
            await interaction.response.defer(ephemeral=True, thinking=True)
            await credit_interaction(ledger, interaction)
        balance = await self.bot.store.credit_balance(interaction.user.id)
        jobs = await self.bot.store.paid_jobs(interaction.user.id, limit=RECENT)
        lines: list[Text] = [_("Your credits: **{balance}**.", balance=dollars(balance))]
        if jobs:
            lines.append(_("Recent spending:"))
            lines += [_spent(job) for job in jobs]
        else:
            lines.append(_("Nothing spent yet."))
        sku_id = ledger.terms.pack_to_offer
        view = premium_view(sku_id) if sku_id is not None else None
        await reply_ephemeral(interaction, joined(lines), view=view)


def _spent(job: Job) -> Text:
    # L10N: one line of /imagine-credits; {when} is a Discord timestamp ("3 hours ago")
    return _n(
        "- {when} {model}: {count} image, {cost}",
        "- {when} {model}: {count} images, {cost}",
        job.image_count,
        when=f"<t:{int(job.created_at)}:R>",
        model=job.model.split("/")[-1],
        count=job.image_count,
        cost=dollars(job.counted_microusd),
    )


async def setup(bot: FluxBot) -> None:
    await bot.add_cog(Credits(bot))
