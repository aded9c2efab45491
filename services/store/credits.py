"""Credits people buy through Discord's Premium Apps, as plain values: the operator's SKUs, an entitlement as the
bot reads it, and what a job is paid with.

Off unless the operator names SKUs (CREDIT_PACKS, CREDIT_SUBSCRIPTION_SKU). When on, every job that costs
something is paid, inside the same atomic admission step as the other limits (`Store.admit_job`), by its
member's balance if it covers the job's booked cost, else by its server's subscription budget (what is left of
it in the last 30 days) if that does, else it is refused. A job draws what the budgets count for it (its booking
while it runs, what it settled at once its prediction ended: services/jobs/settlement.py), so credits pay for
exactly the images made, by the same billing rules as the budgets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

BALANCE = "balance"
SUBSCRIPTION = "subscription"
PACK = "pack"  # a consumable SKU: credited once to its buyer's balance, then consumed through the API


@dataclass(frozen=True)
class CreditTerms:
    """The operator's SKUs: credit packs (SKU id -> millionths of a dollar each) and a server subscription."""

    packs: Mapping[int, int] = field(default_factory=dict)
    subscription_sku: int | None = None
    subscription_micros: int | None = None  # what the subscription gives its server per 30 days

    @property
    def on(self) -> bool:
        return bool(self.packs) or self.subscription_sku is not None

    @property
    def pack_to_offer(self) -> int | None:
        """The SKU the premium button of a refusal sells: the smallest pack (None: no packs)."""
        return min(self.packs, key=lambda sku: (self.packs[sku], sku)) if self.packs else None

    def value_of(self, sku_id: int) -> tuple[str, int] | None:
        """What an entitlement of this SKU is worth to the bot: (PACK or SUBSCRIPTION, millionths); None: not ours."""
        if sku_id in self.packs:
            return PACK, self.packs[sku_id]
        if sku_id == self.subscription_sku and self.subscription_micros is not None:
            return SUBSCRIPTION, self.subscription_micros
        return None


@dataclass(frozen=True)
class Grant:
    """An entitlement as Discord describes it (gateway event, interaction, list route), in plain types."""

    id: int
    sku_id: int
    user_id: int | None
    guild_id: int | None
    deleted: bool = False
    consumed: bool = False
    ends_at: float | None = None  # epoch seconds; None: no end (a pack, or an open subscription)


@dataclass(frozen=True)
class Credit:
    """One row of the ledger of entitlements credited: what `Store.credit_entitlement` keeps."""

    entitlement_id: int
    sku_id: int
    kind: str  # PACK or SUBSCRIPTION
    user_id: int | None
    guild_id: int | None
    micros: int
    ends_at: float | None = None


@dataclass(frozen=True)
class CreditUsage:
    """Credits sold and spent, for the usage report (millionths of a dollar)."""

    sold: int = 0  # packs and subscriptions credited (and not taken back)
    spent_balance: int = 0  # drawn from members' balances
    spent_subscription: int = 0  # drawn from the server's subscription budget


def payer(cost: int, balance: int, subscription_left: int | None) -> str | None:
    """What pays for a job of `cost`: the member's balance, then the server's subscription; None: nothing can."""
    if cost <= balance:
        return BALANCE
    if subscription_left is not None and cost <= subscription_left:
        return SUBSCRIPTION
    return None
