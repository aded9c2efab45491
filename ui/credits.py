"""The Discord side of credits: entitlements as the services read them, and the button that sells a pack."""

from __future__ import annotations

from typing import Any

import discord

from services.jobs.credits import CreditLedger
from services.store.credits import Grant


def grant_of(entitlement: discord.Entitlement) -> Grant:
    """A discord.py entitlement in plain types."""
    ends_at = entitlement.ends_at.timestamp() if entitlement.ends_at is not None else None
    return Grant(
        id=entitlement.id,
        sku_id=entitlement.sku_id,
        user_id=entitlement.user_id,
        guild_id=entitlement.guild_id,
        deleted=entitlement.deleted,
        consumed=entitlement.consumed,
        ends_at=ends_at,
    )


async def credit_interaction(ledger: CreditLedger | None, interaction: discord.Interaction[Any]) -> None:
    """Credit what the interaction says its user owns, before anything is judged against their balance (the
    gateway's ENTITLEMENT_CREATE may not have arrived yet, or have gone to another process)."""
    if ledger is not None and interaction.entitlements:
        await ledger.received_all(grant_of(each) for each in interaction.entitlements)


def premium_view(sku_id: int) -> discord.ui.View:
    """Discord's own purchase button for a SKU (style premium: no label, emoji or custom id)."""
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(style=discord.ButtonStyle.premium, sku_id=sku_id))
    return view
