"""Settings read once from the environment (and `.env`) into one typed object.

Every problem is reported as a `ConfigError` naming the variable; `bot.py` turns it into one line on
stderr and exit status 2.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TextIO, TypeVar
from urllib.parse import urlsplit

from dotenv import load_dotenv

from services.cometapi.connection import Connection
from services.errors import BadInput, ConfigError
from services.jobs.kinds.edit import EDITORS
from services.jobs.kinds.variation import VARIERS
from services.jobs.policy import Policy
from services.jobs.words import ChatPrice
from services.limits import Limits
from services.money import budget, to_micros
from services.rules.blocked_words_file import read_blocked_words
from services.rules.catalogue import OWNER, Catalogue, built_in
from services.rules.catalogue_file import CatalogueError
from services.rules.model_spec import Price
from services.rules.options import RequestContext
from services.rules.pricing import Pricing, parse_prices
from services.secrets import RedactingFilter, Secret
from services.store import sqlite_path
from services.store.credits import CreditTerms

T = TypeVar("T", int, float)

DEFAULT_COMETAPI_BASE_URL = "https://api.cometapi.com"
DEFAULT_DATABASE_URL = "sqlite:///data/bot.db"
DEFAULT_MODEL = "black-forest-labs/flux-schnell"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
INPUT_IMAGE_MODES = ("url", "data_uri")
LOG_FORMATS = ("text", "json")
MIB = 1024 * 1024
# How long a process's claim on a job lasts without renewal; it renews three times per lease.
DEFAULT_LEASE_SECONDS = 30.0
DAY_SECONDS = 86_400.0
DEFAULT_INPUT_IMAGE_RETENTION_DAYS = 3
DEFAULT_INPUT_IMAGE_STORE_MB = 1024
DEFAULT_MAX_REQUEST_MB = 50
DEFAULT_IMAGE_MEMORY_MB = 32  # images in flight held in memory (IMAGE_MEMORY_MB); the rest go to temporary files
# CometAPI's own examples name gpt-5-mini, which also sees images; which models are live is unverified.
DEFAULT_CHAT_MODEL = "gpt-5-mini"
DEFAULT_CHAT_PRICE_PER_1K = 0.002  # dollars; above gpt-5-mini's list price for most answers (its output is dearer)
MAX_MB = 1024 * 1024  # 1 TiB: far above any real limit, and keeps `MB * MIB` from overflowing int()


@dataclass(frozen=True)
class Settings:
    cometapi_key: Secret
    discord_token: Secret | None = None
    cometapi_base_url: str = DEFAULT_COMETAPI_BASE_URL
    database_url: str = DEFAULT_DATABASE_URL
    log_level: str = "INFO"
    discord_api_base_url: str | None = None
    discord_gateway_url: str | None = None
    # Per-request timeouts. CometAPI's query endpoint has been seen to take 45 s, hence the generous read.
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    # The longest we wait for one prediction before cancelling it.
    prediction_deadline: float = 600.0
    max_concurrent_predictions: int = 8
    max_jobs_per_user: int = 2
    user_cooldown: float = 10.0
    max_download_bytes: int = 25 * MIB
    download_timeout: float = 60.0
    # The bytes of images in flight (downloads, fitting, uploads) held in memory; beyond them, temporary files.
    image_memory_bytes: int = DEFAULT_IMAGE_MEMORY_MB * MIB
    max_input_image_bytes: int = 10 * MIB
    input_image_mode: str = "url"
    # Input images are kept this long after their last use (a reroll can send them again meanwhile), and at most
    # this many bytes of them (None: no cap; the least recently used go first).
    input_image_retention_seconds: float = DEFAULT_INPUT_IMAGE_RETENTION_DAYS * DAY_SECONDS
    input_image_store_bytes: int | None = DEFAULT_INPUT_IMAGE_STORE_MB * MIB
    # The largest create the bot sends with images inline (data_uri mode, or the bytes of an expired link).
    # CometAPI documents no limit on a request's size: this is the bot's own, to bound memory and refuse clearly.
    max_request_bytes: int = DEFAULT_MAX_REQUEST_MB * MIB
    allow_unknown_models: bool = False
    models_file: str | None = None  # the operator's catalogue file, over the built-in models.toml
    # The models in use: the built-in catalogue, with MODELS_FILE over it (read once, by load_settings).
    catalogue: Catalogue = field(default_factory=built_in, repr=False)
    default_model: str = DEFAULT_MODEL
    # Opt-in Replicate "sync mode" (`Prefer: wait=N` on create); unverified on CometAPI, so off by default.
    sync_wait_seconds: int = 0
    shard_count: int | None = None
    shard_ids: tuple[int, ...] | None = None
    # Dollars per model (MODEL_PRICES changes the defaults), for the estimated cost of each job.
    model_prices: Mapping[str, Price] = field(default_factory=dict)  # MODEL_PRICES: the operator's prices
    # The operator's caps (None: none): per user across every server, DM and user install, and for the whole bot.
    user_daily_images: int | None = None
    user_daily_budget_micros: int | None = None
    bot_daily_budget_micros: int | None = None
    # Whether a prediction that failed or was cancelled counts its booked cost (the price table is silent on
    # whether CometAPI bills them; an `aborted` one is not billed, and a succeeded one always counts).
    count_failed_predictions: bool = True
    # How long a process's claim on a job lasts without renewal (another process adopts it after that).
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    # Prometheus /metrics and /healthz on this port (None: off), on METRICS_HOST.
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    log_format: str = "text"
    # BLOCKED_WORDS_FILE: phrases refused in every prompt, everywhere, on top of each server's own list.
    blocked_words: tuple[str, ...] = field(default=(), repr=False)
    # Words from a chat model with the same key: ✨ Enhance (CHAT_MODEL), /describe (DESCRIBE_MODEL, which must
    # see images), and the price of their tokens (CHAT_PRICE_PER_1K_TOKENS), in millionths of a dollar.
    chat_model: str = DEFAULT_CHAT_MODEL
    describe_model: str = DEFAULT_CHAT_MODEL
    chat_micros_per_1k_tokens: int = 2_000
    # Credits people buy (Premium Apps), off unless SKUs are named: CREDIT_PACKS, CREDIT_SUBSCRIPTION_SKU and
    # CREDIT_SUBSCRIPTION_USD_PER_MONTH (services/store/credits.py).
    credits: CreditTerms = field(default_factory=CreditTerms)

    def policy(self) -> Policy:
        """What admission applies to every request."""
        return Policy(
            default_model=self.default_model,
            catalogue=self.catalogue,
            limits=Limits(
                cooldown_seconds=self.user_cooldown,
                jobs_in_flight=self.max_jobs_per_user,
                everywhere_images_day=self.user_daily_images,
                everywhere_budget_day=self.user_daily_budget_micros,
                bot_budget_day=self.bot_daily_budget_micros,
                pay_with_credits=self.credits.on,
            ),
            credits=self.credits,
            pricing=Pricing(self.catalogue, self.model_prices),
            blocked_words=self.blocked_words,
            allow_unknown_models=self.allow_unknown_models,
            max_input_image_bytes=self.max_input_image_bytes,
            input_image_mode=self.input_image_mode,
            input_image_retention_seconds=self.input_image_retention_seconds,
            max_request_bytes=self.max_request_bytes,
            chat_model=self.chat_model,
            describe_model=self.describe_model,
            chat_price=ChatPrice(self.chat_micros_per_1k_tokens),
        )

    def api(self) -> Connection:
        """What the prediction service and the key check are built from."""
        return Connection(
            base_url=self.cometapi_base_url,
            api_key=self.cometapi_key,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            sync_wait_seconds=self.sync_wait_seconds,
            max_download_bytes=self.max_download_bytes,
            download_timeout=self.download_timeout,
            image_memory_bytes=self.image_memory_bytes,
            prediction_deadline=self.prediction_deadline,
        )

    def secrets(self) -> list[str]:
        """Every secret value, for the log redaction filter."""
        values = [self.cometapi_key.reveal()]
        if self.discord_token:
            values.append(self.discord_token.reveal())
        return values


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    require_discord: bool = True,
    dotenv_path: str | None = ".env",
) -> Settings:
    """Read the settings. `environ` defaults to os.environ after loading `.env` (which never overrides)."""
    if environ is None:
        if dotenv_path:
            load_dotenv(dotenv_path, override=False)
        environ = os.environ
    env = _Reader(environ)

    key = env.required("COMETAPI_KEY")
    token = env.required("DISCORD_TOKEN") if require_discord else env.optional("DISCORD_TOKEN")

    shard_count = env.integer("SHARD_COUNT", None, minimum=1)
    shard_ids = env.int_list("SHARD_IDS")
    if shard_ids is not None:
        if shard_count is None:
            raise ConfigError("SHARD_IDS", "needs SHARD_COUNT to be set too")
        bad = [i for i in shard_ids if i >= shard_count]
        if bad:
            raise ConfigError("SHARD_IDS", f"shard ids must be below SHARD_COUNT ({shard_count}), got {bad}")

    allow_unknown_models = env.boolean("ALLOW_UNKNOWN_MODELS", False)
    models_file = env.optional("MODELS_FILE")
    catalogue = env.catalogue("MODELS_FILE")  # before DEFAULT_MODEL, which may name one of its models
    try:
        model_prices = parse_prices(env.optional("MODEL_PRICES") or "")
    except ValueError as exc:
        raise ConfigError("MODEL_PRICES", str(exc)) from None
    if not allow_unknown_models:
        _check_priced_models(model_prices, catalogue)
    _check_unknown_models_priced_per_image(model_prices, catalogue)
    default_model = env.model("DEFAULT_MODEL", DEFAULT_MODEL, catalogue, allow_unknown=allow_unknown_models)
    chosen = env.optional("DEFAULT_MODEL") is not None
    _check_defaults_take_a_seed(default_model, models_file, catalogue, chosen=chosen)
    chat_model = env.optional("CHAT_MODEL") or DEFAULT_CHAT_MODEL
    return Settings(
        cometapi_key=Secret(key),
        discord_token=Secret(token) if token else None,
        cometapi_base_url=env.url("COMETAPI_BASE_URL", DEFAULT_COMETAPI_BASE_URL, schemes=("http", "https")),
        database_url=env.database_url("DATABASE_URL", DEFAULT_DATABASE_URL),
        log_level=env.choice("LOG_LEVEL", "INFO", LOG_LEVELS, upper=True),
        discord_api_base_url=env.optional_url("DISCORD_API_BASE_URL", schemes=("http", "https")),
        discord_gateway_url=env.optional_url("DISCORD_GATEWAY_URL", schemes=("ws", "wss")),
        connect_timeout=env.number("COMETAPI_CONNECT_TIMEOUT", 10.0, minimum=0.1),
        read_timeout=env.number("COMETAPI_READ_TIMEOUT", 60.0, minimum=0.1),
        prediction_deadline=env.number("PREDICTION_DEADLINE", 600.0, minimum=1.0),
        max_concurrent_predictions=env.integer("MAX_CONCURRENT_PREDICTIONS", 8, minimum=1) or 8,
        max_jobs_per_user=env.integer("MAX_JOBS_PER_USER", 2, minimum=1) or 2,
        user_cooldown=env.number("USER_COOLDOWN", 10.0, minimum=0.0),
        max_download_bytes=int(env.number("MAX_DOWNLOAD_MB", 25.0, minimum=0.01, maximum=MAX_MB) * MIB),
        download_timeout=env.number("DOWNLOAD_TIMEOUT", 60.0, minimum=0.1),
        image_memory_bytes=int(
            env.number("IMAGE_MEMORY_MB", DEFAULT_IMAGE_MEMORY_MB, minimum=0.0, maximum=MAX_MB) * MIB
        ),
        max_input_image_bytes=int(env.number("MAX_INPUT_IMAGE_MB", 10.0, minimum=0.01, maximum=MAX_MB) * MIB),
        input_image_mode=env.choice("INPUT_IMAGE_MODE", "url", INPUT_IMAGE_MODES),
        input_image_retention_seconds=env.number(
            "INPUT_IMAGE_RETENTION_DAYS", DEFAULT_INPUT_IMAGE_RETENTION_DAYS, minimum=0.0, maximum=36500.0
        )
        * DAY_SECONDS,
        input_image_store_bytes=int(
            env.number("INPUT_IMAGE_STORE_MB", DEFAULT_INPUT_IMAGE_STORE_MB, minimum=0.0, maximum=MAX_MB) * MIB
        )
        or None,  # 0: no cap
        max_request_bytes=int(
            env.number("COMETAPI_MAX_REQUEST_MB", DEFAULT_MAX_REQUEST_MB, minimum=0.1, maximum=MAX_MB) * MIB
        ),
        allow_unknown_models=allow_unknown_models,
        models_file=models_file,
        catalogue=catalogue,
        default_model=default_model,
        sync_wait_seconds=env.integer("COMETAPI_SYNC_WAIT", 0, minimum=0, maximum=60) or 0,
        shard_count=shard_count,
        shard_ids=shard_ids,
        model_prices=model_prices,
        user_daily_images=env.integer("USER_DAILY_IMAGES", None, minimum=0) or None,
        user_daily_budget_micros=env.dollars("USER_DAILY_BUDGET_USD"),
        bot_daily_budget_micros=env.dollars("BOT_DAILY_BUDGET_USD"),
        count_failed_predictions=env.boolean("COUNT_FAILED_PREDICTIONS", True),
        lease_seconds=env.number("JOB_LEASE_SECONDS", DEFAULT_LEASE_SECONDS, minimum=1.0, maximum=3600.0),
        metrics_port=env.integer("METRICS_PORT", None, minimum=1, maximum=65535),
        metrics_host=env.optional("METRICS_HOST") or "127.0.0.1",
        log_format=env.choice("LOG_FORMAT", "text", LOG_FORMATS),
        blocked_words=env.blocked_words("BLOCKED_WORDS_FILE"),
        chat_model=chat_model,
        describe_model=env.optional("DESCRIBE_MODEL") or chat_model,
        credits=_credit_terms(env),
        chat_micros_per_1k_tokens=to_micros(
            Decimal(str(env.number("CHAT_PRICE_PER_1K_TOKENS", DEFAULT_CHAT_PRICE_PER_1K, minimum=0.0, maximum=1000.0)))
        ),
    )


def configure_logging(
    level: str, secrets: list[str], *, stream: TextIO | None = None, log_format: str = "text"
) -> None:
    """One handler on the root logger, with the secret-redacting filter. The bot logs to stdout;
    `generate` logs to stderr because its stdout is the list of written files. `log_format="json"` writes one
    JSON object per line (time, level, logger, message, and the traceback if any)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class JsonFormatter(logging.Formatter):
    """A log record as one JSON line. The redacting filter has already scrubbed the message and traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False)


class _Reader:
    """Small typed accessors that raise ConfigError naming the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._env = environ

    def optional(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def dollars(self, name: str) -> int | None:
        """A budget in US dollars, as millionths; 0 or unset: none."""
        value = self.number(name, 0.0, minimum=0.0, maximum=1e9)
        return budget(value)

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise ConfigError(name, "is not set (put it in the environment or in .env)")
        if any(c.isspace() for c in value):
            raise ConfigError(name, "contains whitespace; check that it was pasted whole")
        return value

    def _parse(self, name: str, default: T | None, kind: Callable[[str], T], what: str) -> T | None:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            return kind(raw)
        except ValueError:
            raise ConfigError(name, f"must be {what}, got {raw!r}") from None

    def integer(
        self, name: str, default: int | None, *, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        value = self._parse(name, default, int, "a whole number")
        if value is not None:
            _check_range(name, value, minimum, maximum)
        return value

    def number(self, name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
        value = self._parse(name, default, float, "a number")
        assert value is not None
        # float() accepts "inf" and "nan", and nan passes every comparison (USER_COOLDOWN=nan would turn it off).
        if not math.isfinite(value):
            raise ConfigError(name, f"must be a finite number, got {self.optional(name)!r}")
        _check_range(name, value, minimum, maximum)
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.optional(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(name, f"must be true or false, got {raw!r}")

    def choice(self, name: str, default: str, allowed: tuple[str, ...], *, upper: bool = False) -> str:
        raw = self.optional(name)
        if raw is None:
            return default
        value = raw.upper() if upper else raw.lower()
        if value not in allowed:
            raise ConfigError(name, f"must be one of {', '.join(allowed)}, got {raw!r}")
        return value

    def int_list(self, name: str) -> tuple[int, ...] | None:
        raw = self.optional(name)
        if raw is None:
            return None
        try:
            values = tuple(int(part) for part in raw.replace(" ", "").split(",") if part)
        except ValueError:
            raise ConfigError(name, f"must be comma-separated whole numbers, got {raw!r}") from None
        if not values or any(v < 0 for v in values):
            raise ConfigError(name, f"must list at least one shard id >= 0, got {raw!r}")
        return values

    def url(self, name: str, default: str, *, schemes: tuple[str, ...]) -> str:
        return self.optional_url(name, schemes=schemes) or default

    def optional_url(self, name: str, *, schemes: tuple[str, ...]) -> str | None:
        raw = self.optional(name)
        if raw is None:
            return None
        try:
            parts = urlsplit(raw)
            _ = parts.port  # raises for a port that is not a number from 0 to 65535
        except ValueError as exc:
            raise ConfigError(name, f"is not a usable URL ({exc}), got {raw!r}") from None
        if parts.scheme not in schemes or not parts.hostname:
            raise ConfigError(name, f"must be a {' or '.join(schemes)} URL with a host, got {raw!r}")
        return raw.rstrip("/")

    def database_url(self, name: str, default: str) -> str:
        """The form only; whether the database can be opened is checked at start-up (store.preflight)."""
        raw = self.optional(name) or default
        try:
            parts = urlsplit(raw)
        except ValueError:  # an unclosed [ (an IPv6 host): not echoed, as below
            raise ConfigError(name, UNUSABLE_POSTGRESQL_URL) from None
        scheme = parts.scheme
        if scheme not in ("sqlite", "postgres", "postgresql"):
            raise ConfigError(name, f"must start with sqlite:/// or postgresql://, got scheme {scheme!r}")
        if scheme == "sqlite":
            try:
                sqlite_path(raw)
            except ValueError as exc:
                raise ConfigError(name, f"{exc}, got {raw!r}") from None
            return raw
        try:
            _ = parts.port
        except ValueError:
            # Not echoed: the URL holds the password, which may be what broke it (an unencoded / # ? or @).
            raise ConfigError(name, UNUSABLE_POSTGRESQL_URL) from None
        return raw

    def catalogue(self, name: str) -> Catalogue:
        """The models in use: the built-in catalogue, with the operator's file (checked) over it where set."""
        path = self.optional(name)
        if path is None:
            return built_in()
        try:
            return Catalogue.load(path)
        except CatalogueError as exc:
            raise ConfigError(name, str(exc)) from None

    def blocked_words(self, name: str) -> tuple[str, ...]:
        """The operator's blocked phrases; none when the setting is not set, a mistake when the file can't be read."""
        path = self.optional(name)
        if path is None:
            return ()
        try:
            return read_blocked_words(path)
        except ValueError as exc:
            raise ConfigError(name, str(exc)) from None

    def model(self, name: str, default: str, catalogue: Catalogue, *, allow_unknown: bool) -> str:
        """A model every /imagine can use: a catalogue model, or any owner/name when unknown ones are allowed."""
        value = self.optional(name) or default
        try:
            catalogue.resolve(value, allow_unknown=allow_unknown)
        except BadInput:
            if allow_unknown:
                raise ConfigError(name, f"must be a model id like owner/name, got {value!r}") from None
            raise ConfigError(
                name,
                f"{value!r} is not a known model; choose one of {catalogue.names()} "
                "(or set ALLOW_UNKNOWN_MODELS=true to use another owner/name model)",
            ) from None
        return value


MAX_SNOWFLAKE = 2**63 - 1
MAX_PACK_USD = 10_000.0


def _credit_terms(env: _Reader) -> CreditTerms:
    """CREDIT_PACKS ("SKU_ID=DOLLARS, ...") and the server subscription; none set: credits are off."""
    packs: dict[int, int] = {}
    raw = env.optional("CREDIT_PACKS") or ""
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        sku_text, _sep, amount_text = part.partition("=")
        sku, amount = _sku("CREDIT_PACKS", sku_text.strip()), _pack_dollars(amount_text.strip(), part)
        if sku in packs:
            raise ConfigError("CREDIT_PACKS", f"SKU {sku} is named twice")
        packs[sku] = amount
    sub_text = env.optional("CREDIT_SUBSCRIPTION_SKU")
    monthly = env.dollars("CREDIT_SUBSCRIPTION_USD_PER_MONTH")
    if sub_text is None:
        if monthly is not None:
            raise ConfigError("CREDIT_SUBSCRIPTION_USD_PER_MONTH", "needs CREDIT_SUBSCRIPTION_SKU to be set too")
        return CreditTerms(packs=packs)
    sub = _sku("CREDIT_SUBSCRIPTION_SKU", sub_text)
    if sub in packs:
        raise ConfigError("CREDIT_SUBSCRIPTION_SKU", f"SKU {sub} is also a credit pack in CREDIT_PACKS")
    if monthly is None:
        raise ConfigError("CREDIT_SUBSCRIPTION_SKU", "needs CREDIT_SUBSCRIPTION_USD_PER_MONTH (the monthly budget)")
    return CreditTerms(packs=packs, subscription_sku=sub, subscription_micros=monthly)


def _sku(name: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= MAX_SNOWFLAKE:
        raise ConfigError(name, f"must name SKU ids (the numbers from the developer portal), got {text!r}")
    return int(text)


def _pack_dollars(text: str, part: str) -> int:
    try:
        value = Decimal(text)
    except ArithmeticError:
        value = Decimal(-1)
    if not value.is_finite() or not 0 < value <= Decimal(str(MAX_PACK_USD)):
        raise ConfigError(
            "CREDIT_PACKS", f"each pack is SKU_ID=DOLLARS with 0 < DOLLARS <= {MAX_PACK_USD:g}, got {part!r}"
        )
    return to_micros(value)


def _check_priced_models(prices: Mapping[str, Price], catalogue: Catalogue) -> None:
    """A price for a model the catalogue lacks is a typo (flux-shnell) that would leave the real one unpriced."""
    for model_id in prices:
        if model_id in catalogue:
            continue
        name = model_id.removeprefix(f"{OWNER}/")
        close = difflib.get_close_matches(name, [*catalogue.short_names, *catalogue], n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(
            "MODEL_PRICES",
            f"{name!r} is not a model in the catalogue{hint}; models: {catalogue.names()} "
            "(or set ALLOW_UNKNOWN_MODELS=true to price another owner/name model)",
        )


UNUSABLE_POSTGRESQL_URL = (
    "is not a usable PostgreSQL URL: give a port from 1 to 65535, and URL-encode / # ? @ : in the user name and "
    "password (%2F %23 %3F %40 %3A)"
)


def _check_unknown_models_priced_per_image(prices: Mapping[str, Price], catalogue: Catalogue) -> None:
    """A model the catalogue lacks has no known image sizes, so a price per megapixel could not be booked."""
    for model_id, price in prices.items():
        if model_id not in catalogue and (price.rates.per_input_mp or price.rates.per_output_mp):
            raise ConfigError(
                "MODEL_PRICES",
                f"{model_id}: in_mp and out_mp need the model's image sizes, which only models in the catalogue "
                "have; price it by run and image, or add it to MODELS_FILE",
            )


def _check_defaults_take_a_seed(
    default_model: str, models_file: str | None, catalogue: Catalogue, *, chosen: bool
) -> None:
    """Every job is sent a seed (rerolls and variations depend on it), so a default model that takes none
    would fail every job that uses it. The edit and variation defaults come from the catalogue (MODELS_FILE),
    and so does the built-in DEFAULT_MODEL's definition when DEFAULT_MODEL is not set."""
    context = RequestContext(default_model=default_model, catalogue=catalogue)
    picks: list[tuple[str, str | None]] = [("", catalogue.full_id(default_model))]
    for what, pick in (("edits", EDITORS.pick), ("variations", VARIERS.pick)):
        try:
            picks.append((what, pick(context)))
        except BadInput:
            continue  # no model for it at all: the command says so when used
    for what, model_id in picks:
        spec = catalogue.get(model_id or "")
        if spec is None or "seed" in spec.params:
            continue
        problem = "takes no `seed` input, which every job sends"
        if not what and chosen:
            raise ConfigError("DEFAULT_MODEL", f"{spec.name} {problem}; choose a model that does")
        role = f"the default model for {what}" if what else "the default model (DEFAULT_MODEL)"
        raise ConfigError(
            "MODELS_FILE", f"{models_file}: {spec.name}, {role}, {problem}; give it a `seed` param or disable it"
        )


def _check_range(name: str, value: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(name, f"must be at most {maximum}, got {value}")
