"""The bot: owns what the cogs share (the store, the prediction service, admission, the job runner and the
display), loads every cog as an extension, syncs the commands when they changed, and serves the health check.
bot.py is only the entry point that starts it."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from pathlib import Path

import aiohttp
import discord
from discord.ext import commands

from services.cometapi.files import Downloader
from services.cometapi.service import PredictionService
from services.config import Settings
from services.errors import ConfigError
from services.gc_tuning import keep_collecting
from services.jobs.admission import Admission
from services.jobs.credits import CreditLedger
from services.jobs.leases import LeaseFence, LeaseTerms
from services.jobs.retention import Retention, keep_pruning
from services.jobs.runner import JobRunner
from services.jobs.settlement import Settlement
from services.loopwatch import LoopWatch
from services.malloc import keep_releasing
from services.metrics import Metrics
from services.metrics_server import start_metrics_server
from services.store import Store, open_store
from services.store.credits import Grant
from ui.app_emojis import app_icons
from ui.credits import grant_of
from ui.display import DiscordDisplay
from ui.errors import FluxTree
from ui.i18n import CatalogueTranslator
from ui.job_log import JobLog
from ui.launch import Launcher
from ui.views import JobButton, JobButtons

log = logging.getLogger("bot")

# Every module of cogs/ is an extension: a new feature is a new file there, nothing to list. (Found by path:
# the bot loads the cogs by name and never imports them.)
COGS = Path(__file__).resolve().parents[1] / "cogs"
EXTENSIONS = tuple(sorted(f"cogs.{path.stem}" for path in COGS.glob("*.py") if path.stem != "__init__"))
DISCORD_CDN = ("https://cdn.discordapp.com", "https://media.discordapp.net")
FINGERPRINT_KEY = "command_fingerprint"
HEALTH_STORE_TIMEOUT = 3.0
# What discord.py logs, with a whole traceback, at each failed attempt to reach the gateway again.
RECONNECT_LOGS = {
    "discord.client": ("Attempting a reconnect",),
    "discord.shard": ("Attempting a reconnect", "Failed to connect for shard_id"),
}


class OneLineReconnects(logging.Filter):
    """Turns discord.py's reconnect tracebacks into one line per attempt: while Discord or the network is down
    they repeat with every backoff, and the cause (the exception's type and message) is all that tells."""

    def __init__(self, prefixes: tuple[str, ...]) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and str(record.msg).startswith(self.prefixes):
            exc = record.exc_info[1]
            cause = " ".join(f"{type(exc).__name__}: {exc}".split()) if exc else "unknown cause"
            record.msg = f"{record.getMessage()} ({cause})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_reconnects() -> None:
    """Install OneLineReconnects on discord.py's loggers, once per process."""
    for name, prefixes in RECONNECT_LOGS.items():
        logger = logging.getLogger(name)
        if not any(isinstance(each, OneLineReconnects) for each in logger.filters):
            logger.addFilter(OneLineReconnects(prefixes))


class FluxBot(commands.AutoShardedBot):
    """Owns what the cogs share: the store, the prediction service, admission, the job runner and display."""

    store: Store
    service: PredictionService
    runner: JobRunner
    display: DiscordDisplay
    admission: Admission
    launcher: Launcher

    def __init__(self, settings: Settings, *, sync_only: bool = False, store: Store | None = None) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_reactions = True  # 🔄 rerolls; no message content, no members
        intents.dm_reactions = True
        shard_count = settings.shard_count
        if shard_count is None and settings.discord_gateway_url:
            shard_count = 1  # with a gateway URL given, don't take the one /gateway/bot returns
        self.metrics = Metrics(settings.catalogue)
        self.lease = LeaseTerms(settings.lease_seconds)
        quiet_reconnects()
        # The bot has no voice: discord.py's warnings that its voice libraries are missing would only alarm.
        discord.VoiceClient.warn_nacl = discord.VoiceClient.warn_dave = False
        super().__init__(
            command_prefix=commands.when_mentioned,
            intents=intents,
            tree_cls=FluxTree,
            shard_count=shard_count,
            shard_ids=list(settings.shard_ids) if settings.shard_ids else None,  # type: ignore[arg-type]
            allowed_mentions=discord.AllowedMentions.none(),
            help_command=None,
            max_messages=None,  # reactions are read from raw events; no message cache needed
            chunk_guilds_at_startup=False,
            http_trace=self._discord_trace(),
            # Every command may be installed to a user's account too and used anywhere (a user install reaches
            # servers without the bot, DMs and group DMs); the server settings narrow themselves to servers.
            allowed_installs=discord.app_commands.AppInstallationType(guild=True, user=True),
            allowed_contexts=discord.app_commands.AppCommandContext(guild=True, dm_channel=True, private_channel=True),
        )
        self.settings = settings
        self.sync_only = sync_only
        self._resources = contextlib.AsyncExitStack()
        # The store, when it was opened (and checked) before Discord was contacted; else setup_hook opens it.
        self._opened_store = store
        if store is not None:
            self._resources.push_async_callback(store.close)
        self.job_buttons = JobButtons()  # what each button on a job message does, filled by the cogs

    async def setup_hook(self) -> None:
        if self._opened_store is None:
            self._opened_store = await self._resources.enter_async_context(await open_store(self.settings.database_url))
        self.store = self._opened_store
        self.service = await self._resources.enter_async_context(
            PredictionService.open(self.settings.api(), typical_seconds=self.settings.catalogue.typical_seconds())
        )
        # What each job's Discord calls, API calls and store writes are checked against (services/jobs/leases.py).
        fence = LeaseFence(self.store, self.lease)
        self.display = DiscordDisplay(self, fence, self.job_buttons)
        policy = self.settings.policy()
        self.runner = JobRunner(
            self.service,
            self.store,
            self.display,
            max_concurrent=self.settings.max_concurrent_predictions,
            input_image_mode=self.settings.input_image_mode,
            max_request_bytes=self.settings.max_request_bytes,
            lease=self.lease,
            fence=fence,
            metrics=self.metrics,
            settlement=Settlement(policy.pricing, count_failed=self.settings.count_failed_predictions),
        )
        self.admission = Admission(
            policy, self.store, self.attachment_downloader(), shard_of=self.shard_of, lease=self.lease,
            on_admitted=lambda job: self.metrics.job_admitted(job.model, job.cost_microusd),
            chat=self.service.client,
        )  # fmt: skip
        # Credits people buy (off unless the operator names SKUs): services/jobs/credits.py, cogs/credits.py.
        self.credits = CreditLedger(policy.credits, self.store, self._consume) if policy.credits.on else None
        self.launcher = Launcher(self.admission, self.runner, self.display, JobLog(self), credits=self.credits)
        self.add_dynamic_items(JobButton)
        await self.tree.set_translator(CatalogueTranslator())  # command descriptions in every catalogue language
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self.sync_only:
            return
        self.loopwatch = LoopWatch()  # logs event-loop stalls (a blocked loop delays every interaction)
        self.loopwatch.start()
        await self.start_metrics()
        await self.sync_if_changed()
        self.job_buttons.icons = await app_icons(self)  # before any result is drawn, resumed ones included
        # Kept, so it is not collected mid-run and `close` can wait for it.
        self.resumer = asyncio.create_task(self.runner.resume(self.settings.shard_ids), name="resume-jobs")
        # Renew this process's leases; on PostgreSQL also adopt the jobs of processes that died.
        self.lease_keeper = asyncio.create_task(
            self.runner.keep_leases(adopt=not self.store.single_process), name="job-leases"
        )
        # Input images are kept as long as a reroll can use them (services/jobs/retention.py).
        retention = Retention(self.settings.input_image_retention_seconds, self.settings.input_image_store_bytes)
        self.image_keeper = asyncio.create_task(keep_pruning(self.store, retention), name="input-image-retention")
        # The memory a burst freed goes back to the system (services/malloc.py).
        self.memory_keeper = asyncio.create_task(keep_releasing(), name="release-free-memory")
        # Jobs' cyclic garbage is collected within half a minute at any pace (services/gc_tuning.py).
        self.garbage_keeper = asyncio.create_task(keep_collecting(), name="collect-garbage")
        if self.credits is not None:  # purchases and refunds made while no process ran, and consumes to retry
            self.credit_keeper = asyncio.create_task(self._reconcile_credits(), name="credits-reconcile")

    async def _consume(self, entitlement_id: int) -> None:
        await self.http.consume_entitlement(self.application_id or 0, entitlement_id)

    async def _all_entitlements(self) -> list[Grant]:
        """Every entitlement of the app, deleted ones too (a refund made while no process ran). The list route is
        read directly: discord.py's `entitlements()` drops `exclude_deleted` when it pages forwards."""
        assert self.credits is not None
        terms = self.credits.terms
        skus: list[str | int] = [*terms.packs, *([terms.subscription_sku] if terms.subscription_sku else [])]  # ours
        grants: list[Grant] = []
        after: int | None = None
        while True:
            page = await self.http.get_entitlements(
                self.application_id or 0, sku_ids=skus, after=after, limit=100, exclude_deleted=False
            )
            grants += [grant_of(discord.Entitlement(data=each, state=self._connection)) for each in page]
            if len(page) < 100:
                return grants
            after = int(page[-1]["id"])

    async def _reconcile_credits(self) -> None:
        assert self.credits is not None
        try:
            await self.credits.reconcile(await self._all_entitlements())
        except Exception:
            log.exception("credits: reconciling the entitlements failed; the next start-up tries again")

    def _discord_trace(self) -> aiohttp.TraceConfig:
        """Counts Discord's 429s for the metrics (discord.py waits and retries them itself)."""
        trace = aiohttp.TraceConfig()

        async def on_request_end(_session: object, _context: object, params: aiohttp.TraceRequestEndParams) -> None:
            if params.response.status == 429:
                self.metrics.discord_rate_limited()

        trace.on_request_end.append(on_request_end)
        return trace

    async def start_metrics(self) -> None:
        port = self.settings.metrics_port
        if port is None:
            return
        self.metrics.watch(
            queue_depth=lambda: self.runner.limiter.waiting,
            in_flight=self.runner.in_flight,
            api_errors=lambda: self.service.client.errors,
            tasks=lambda: len(asyncio.all_tasks()),
            loop_lag=self.loopwatch.recent_lag,
            image_memory=lambda: self.service.downloader.spool.budget.used,
            images_spilled=lambda: self.service.downloader.spool.budget.spilled,
        )
        host = self.settings.metrics_host
        try:
            runner = await start_metrics_server(host, port, self.metrics, self.health)
        except OSError as exc:
            raise ConfigError("METRICS_PORT", f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self._resources.push_async_callback(runner.cleanup)

    async def health(self) -> tuple[bool, str]:
        """Healthy when every gateway shard is connected and the store answers."""
        if self.is_closed() or not self.is_ready():
            return False, "not connected to Discord"
        down = [shard_id for shard_id, shard in self.shards.items() if shard.is_closed()]
        if down:
            return False, f"gateway shard(s) {down} disconnected"
        try:
            await asyncio.wait_for(self.store.schema_version(), HEALTH_STORE_TIMEOUT)
        except Exception as exc:
            return False, f"the database does not answer ({type(exc).__name__})"
        return True, "ok"

    def attachment_downloader(self) -> Downloader:
        """Fetches input images from Discord's CDN only (the API's own downloads may go anywhere on https)."""
        settings = self.settings
        trusted = [*DISCORD_CDN, *([settings.discord_api_base_url] if settings.discord_api_base_url else [])]
        return Downloader(
            self.service.downloader.session,
            max_bytes=settings.max_input_image_bytes,
            timeout=settings.download_timeout,
            trusted_urls=trusted,
            https_any_host=False,
            spool=self.service.downloader.spool,  # one memory budget for every image in flight
        )

    async def command_fingerprint(self) -> str:
        """A hash of what a sync would send, localisations included (a new translation is a change too)."""
        translator = self.tree.translator
        payload = [
            await command.get_translated_payload(self.tree, translator) if translator else command.to_dict(self.tree)
            for command in self.tree.get_commands()
        ]
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    async def sync_if_changed(self) -> None:
        """Sync application commands only when they changed since the last sync (Discord rate-limits syncs)."""
        fingerprint = await self.command_fingerprint()
        if await self.store.get_meta(FINGERPRINT_KEY) == fingerprint:
            log.info("Application commands unchanged; not syncing")
            return
        synced = await self.tree.sync()
        await self.store.set_meta(FINGERPRINT_KEY, fingerprint)
        log.info("Synced %d application command(s)", len(synced))

    def shard_of(self, guild_id: int | None) -> int:
        if guild_id is None or not self.shard_count:
            return 0
        return (guild_id >> 22) % self.shard_count

    async def on_ready(self) -> None:
        log.info("Logged in as %s; %d guild(s), shards %s", self.user, len(self.guilds), self.shard_ids or "auto")

    async def close(self) -> None:
        for name in ("resumer", "lease_keeper", "image_keeper", "credit_keeper", "memory_keeper", "garbage_keeper"):
            keeper = getattr(self, name, None)
            if keeper is not None:
                keeper.cancel()  # no adoptions (or deletions) while shutting down
                await asyncio.gather(keeper, return_exceptions=True)
        runner = getattr(self, "runner", None)
        if runner is not None:
            await runner.shutdown()
        if (watch := getattr(self, "loopwatch", None)) is not None:
            watch.stop()
        await super().close()
        await self._resources.aclose()
