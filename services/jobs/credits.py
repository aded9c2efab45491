"""Entitlements in, credits out: each purchase credited once, consumed through the API, taken back when refunded.

An entitlement reaches the bot three ways, possibly all of them and in several processes: the gateway's
ENTITLEMENT_CREATE, the `entitlements` of every interaction its buyer makes, and the list route read at start-up
(`reconcile`). Whatever the order, the store's ledger is keyed by the entitlement's id, so it is credited once
(`Store.credit_entitlement` says which call did it). A credit pack is then consumed (Discord lets its buyer buy
it again only once it is), by the process that credited it; a consume that fails stays pending in the ledger and
is retried by `consume_pending` (after each credit, and at start-up), never credited again.

A deleted entitlement (a refund, or Discord removing it) is taken back: it counts no more, so the balance drops by
its value and may go below zero. It is not stopped at zero on purpose: the images it paid for were made and paid
to CometAPI, and a floor would let someone buy, spend, refund and keep what they spent; a negative balance only
means the next purchase pays that back first. One deleted before it was ever seen is recorded as taken back, so a
late ENTITLEMENT_CREATE for it credits nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from services.store.base import Store
from services.store.credits import PACK, SUBSCRIPTION, Credit, CreditTerms, Grant

log = logging.getLogger(__name__)

Consume = Callable[[int], Awaitable[None]]  # POST /applications/{app}/entitlements/{id}/consume


class CreditLedger:
    def __init__(self, terms: CreditTerms, store: Store, consume: Consume, *, clock: Callable[[], float] = time.time):
        self.terms = terms
        self.store = store
        self.consume = consume
        self.clock = clock

    def credit_of(self, grant: Grant) -> Credit | None:
        """The ledger row for an entitlement of one of the operator's SKUs; None for any other."""
        value = self.terms.value_of(grant.sku_id)
        if value is None:
            return None
        kind, micros = value
        if kind == PACK and grant.user_id is None:
            log.warning("credits: pack entitlement %s names no user; ignored", grant.id)
            return None
        if kind == SUBSCRIPTION and grant.guild_id is None:
            log.warning("credits: subscription entitlement %s names no server; ignored", grant.id)
            return None
        return Credit(grant.id, grant.sku_id, kind, grant.user_id, grant.guild_id, micros, grant.ends_at)

    async def received(self, grant: Grant) -> bool:
        """An entitlement seen anywhere (gateway, interaction, list): credited if new; True if this call did."""
        credit = self.credit_of(grant)
        if credit is None:
            return False
        if grant.deleted:
            await self.taken_back(grant)
            return False
        if grant.consumed:
            return False  # consumed already: credited by whoever consumed it (this ledger, or none of ours)
        credited = await self.store.credit_entitlement(credit, now=self.clock())
        if credited:
            log.info("credits: entitlement %s (SKU %s) credited %s micro-USD", grant.id, grant.sku_id, credit.micros)
            if credit.kind == PACK:
                await self.consume_pending()
        return credited

    async def received_all(self, grants: Iterable[Grant]) -> None:
        for grant in grants:
            await self.received(grant)

    async def updated(self, grant: Grant) -> None:
        """ENTITLEMENT_UPDATE: a subscription renewed or cancelled (its new end), or an entitlement deleted."""
        credit = self.credit_of(grant)
        if credit is None:
            return
        if grant.deleted:
            await self.taken_back(grant)
            return
        # A subscription first seen here is credited; one known already gets its new end.
        if credit.kind == SUBSCRIPTION and not await self.store.credit_entitlement(credit, now=self.clock()):
            await self.store.renew_subscription(grant.id, grant.ends_at)

    async def taken_back(self, grant: Grant) -> None:
        """ENTITLEMENT_DELETE (a refund): the entitlement counts no more."""
        credit = self.credit_of(grant)
        if credit is not None and await self.store.take_back(credit, now=self.clock()):
            log.info("credits: entitlement %s (SKU %s) taken back", grant.id, grant.sku_id)

    async def consume_pending(self) -> None:
        """Consume every credited pack not consumed yet; one that fails waits for the next call."""
        for entitlement_id in await self.store.unconsumed_packs():
            try:
                await self.consume(entitlement_id)
            except Exception as exc:  # any failure of the call: retried later, the credit stays
                log.warning("credits: consuming entitlement %s failed (%s); will retry", entitlement_id, exc)
                continue
            await self.store.mark_consumed(entitlement_id, now=self.clock())

    async def reconcile(self, listed: Iterable[Grant]) -> None:
        """At start-up, from the list route (deleted ones included): what was missed while no process ran."""
        pending = set(await self.store.unconsumed_packs())
        for grant in listed:
            if grant.consumed and grant.id in pending:
                await self.store.mark_consumed(grant.id, now=self.clock())  # consumed, its answer lost
            elif grant.deleted:
                await self.taken_back(grant)
            elif (credit := self.credit_of(grant)) is not None and credit.kind == SUBSCRIPTION:
                await self.updated(grant)  # credited if new; else its end as it is now (renewed or cancelled meanwhile)
            else:
                await self.received(grant)
        await self.consume_pending()
