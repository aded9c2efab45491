"""Premium Apps in the fake Discord: entitlements people "buy", the gateway events, the list and consume routes,
and the `entitlements` of each interaction.

A test buys with ``fake.buy(user, sku_id)`` (a consumable: ENTITLEMENT_CREATE, unless ``announce=False`` for a
purchase whose event never reached the bot), subscribes a server with ``fake.subscribe(guild, user, sku_id)``
(renewed with ``renew``: ENTITLEMENT_UPDATE), and refunds with ``fake.refund(entitlement_id)``
(ENTITLEMENT_DELETE). Like Discord, a consumable stays in its buyer's interactions until the app consumes it, and
can be consumed once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from fakes.discord_models import JSON, DiscordHTTPError, IdLike, as_id, unknown, utc_iso

if TYPE_CHECKING:
    from fakes.discord import FakeDiscord

# Entitlement types (Discord's docs): a purchase of a one-time or consumable SKU, an app subscription.
PURCHASE, APPLICATION_SUBSCRIPTION = 1, 8
MAX_LIST = 100


@dataclass
class FakeEntitlement:
    id: int
    sku_id: int
    user_id: int
    guild_id: int | None = None
    type: int = PURCHASE
    starts_at: float | None = None
    ends_at: float | None = None
    deleted: bool = False
    consumed: bool = False
    consumes: list[float] = field(default_factory=list)  # when the app consumed it (a second try is refused)

    def payload(self, application_id: int) -> JSON:
        return {
            "id": str(self.id),
            "sku_id": str(self.sku_id),
            "application_id": str(application_id),
            "user_id": str(self.user_id),
            "guild_id": None if self.guild_id is None else str(self.guild_id),
            "deleted": self.deleted,
            "starts_at": None if self.starts_at is None else utc_iso(self.starts_at),
            "ends_at": None if self.ends_at is None else utc_iso(self.ends_at),
            "type": self.type,
            "consumed": self.consumed,
        }


class Entitlements:
    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        self.all: dict[int, FakeEntitlement] = {}

    def register(self, app: web.Application, prefix: str) -> None:
        base = prefix + "/applications/{app_id}/entitlements"
        app.router.add_get(base, self.list_route)
        app.router.add_post(base + "/{entitlement_id}/consume", self.consume_route)

    # ---- what tests do -------------------------------------------------------------------------

    def buy(self, user: IdLike, sku_id: int, *, guild: IdLike | None = None, announce: bool = True) -> FakeEntitlement:
        entitlement = FakeEntitlement(
            self.fake._snowflakes.next(), sku_id, as_id(user), None if guild is None else as_id(guild)
        )
        self.all[entitlement.id] = entitlement
        if announce:
            self._dispatch("ENTITLEMENT_CREATE", entitlement)
        return entitlement

    def subscribe(self, guild: IdLike, user: IdLike, sku_id: int, *, ends_at: float | None = None) -> FakeEntitlement:
        entitlement = FakeEntitlement(
            self.fake._snowflakes.next(), sku_id, as_id(user), as_id(guild), APPLICATION_SUBSCRIPTION, ends_at=ends_at
        )
        self.all[entitlement.id] = entitlement
        self._dispatch("ENTITLEMENT_CREATE", entitlement)
        return entitlement

    def renew(self, entitlement_id: int, ends_at: float | None) -> None:
        """A subscription renewed (or cancelled: it ends at `ends_at`): ENTITLEMENT_UPDATE."""
        entitlement = self.all[entitlement_id]
        entitlement.ends_at = ends_at
        self._dispatch("ENTITLEMENT_UPDATE", entitlement)

    def refund(self, entitlement_id: int, *, announce: bool = True) -> None:
        entitlement = self.all[entitlement_id]
        entitlement.deleted = True
        if announce:
            self._dispatch("ENTITLEMENT_DELETE", entitlement)

    def announce(self, entitlement_id: int, event: str = "ENTITLEMENT_CREATE") -> None:
        """Send an entitlement's event (again): Discord may deliver one more than once."""
        self._dispatch(event, self.all[entitlement_id])

    def for_interaction(self, user_id: int, guild_id: int | None) -> list[JSON]:
        """What an interaction of this user (in this server) carries: their live entitlements and the server's."""
        return [
            each.payload(self.fake.application_id)
            for each in self.all.values()
            if not each.deleted
            and not each.consumed
            and (
                each.user_id == user_id if each.guild_id is None or each.type == PURCHASE else each.guild_id == guild_id
            )
        ]

    def _dispatch(self, event: str, entitlement: FakeEntitlement) -> None:
        self.fake._gateway.dispatch(event, entitlement.payload(self.fake.application_id), guild_id=None)

    # ---- routes --------------------------------------------------------------------------------

    def _app(self, request: web.Request) -> None:
        if request.match_info["app_id"] != str(self.fake.application_id):
            raise unknown("Application", 10002)

    async def list_route(self, request: web.Request) -> web.Response:
        from fakes.discord_rest import json_response

        self._app(request)
        q = request.query
        found = sorted(self.all.values(), key=lambda e: e.id)
        if "user_id" in q:
            found = [e for e in found if e.user_id == int(q["user_id"])]
        if "guild_id" in q:
            found = [e for e in found if e.guild_id == int(q["guild_id"])]
        if q.get("sku_ids"):
            skus = {int(s) for s in q["sku_ids"].split(",")}
            found = [e for e in found if e.sku_id in skus]
        if q.get("exclude_deleted", "true").lower() in ("1", "true"):  # Discord's default: true
            found = [e for e in found if not e.deleted]
        limit = min(int(q.get("limit", MAX_LIST)), MAX_LIST)
        if "before" in q:
            found = [e for e in found if e.id < int(q["before"])][-limit:]
        else:
            found = [e for e in found if e.id > int(q.get("after", 0))][:limit]
        return json_response([e.payload(self.fake.application_id) for e in found])

    async def consume_route(self, request: web.Request) -> web.Response:
        from fakes.discord_rest import no_content

        self._app(request)
        entitlement = self.all.get(int(request.match_info["entitlement_id"]))
        if entitlement is None or entitlement.deleted:
            raise unknown("Entitlement", 10069)
        if entitlement.consumed:
            raise DiscordHTTPError(400, 40074, "Entitlement already consumed")
        entitlement.consumed = True
        entitlement.consumes.append(self.fake.cdn_now())
        return no_content()
