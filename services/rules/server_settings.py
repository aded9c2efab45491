"""Server defaults, allowed models, limits and user preferences: validated edits and effective values.

Plain data in and out; the Discord commands that call this live in cogs/settings.py and cogs/prefs.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

from services.errors import BadInput
from services.limits import BUDGET_SETTINGS, Limits
from services.money import dollars
from services.rules.catalogue import Catalogue, ModelSpec, check_option
from services.rules.options import EDIT_MODEL_SETTING, OPTION_NAMES, VARIATION_MODEL_SETTING, partners
from services.rules.variation_models import MECHANISMS, can_vary
from services.store.models import GuildSettings
from services.text import Text, _, verbatim

LIMIT_NAMES = (
    "cooldown_seconds",
    "jobs_in_flight",
    "images_per_user_per_day",
    "images_per_guild_per_day",
    *BUDGET_SETTINGS,
)
MAX_BUDGET_USD = 1_000_000


@dataclass(frozen=True)
class Effective:
    name: str
    value: object
    source: str  # "server", "built-in"


MODEL_SETTINGS = ("model", EDIT_MODEL_SETTING, VARIATION_MODEL_SETTING)


def shown_value(catalogue: Catalogue, name: str, value: object) -> object:
    """A setting's value as replies show it: a model by its short name (flux-dev), as everywhere else."""
    if name not in MODEL_SETTINGS or not isinstance(value, str):
        return value
    spec = catalogue.get(value)
    return spec.name if spec is not None else value.rsplit("/", maxsplit=1)[-1]


def empty(guild_id: int) -> GuildSettings:
    return GuildSettings(guild_id=guild_id, defaults={}, allowed_models=None, limits={}, updated_at=time.time())


def validated_defaults(
    catalogue: Catalogue, current: Mapping[str, object], changes: Mapping[str, object], *, default_model: str
) -> dict[str, object]:
    """`current` updated with `changes`, each value checked against the model it will apply to.

    A default that every plain /imagine would be refused for is refused now: a model that needs an input image,
    and a value that needs options no default can give (aspect_ratio custom, which needs width and height).
    """
    merged = {**current, **{k: v for k, v in changes.items() if v is not None}}
    model_given = changes.get("model") is not None
    if model_given:
        spec = catalogue.resolve(str(changes["model"]))
        assert spec is not None
        merged["model"] = spec.id
    spec = catalogue.resolve(str(merged.get("model") or default_model))
    checked: dict[str, object] = {"model": merged["model"]} if "model" in merged else {}
    if merged.get(EDIT_MODEL_SETTING) is not None:
        checked[EDIT_MODEL_SETTING] = _editing_model(catalogue, str(merged[EDIT_MODEL_SETTING]))
    if merged.get(VARIATION_MODEL_SETTING) is not None:
        checked[VARIATION_MODEL_SETTING] = varying_model(catalogue, str(merged[VARIATION_MODEL_SETTING]))
    for name in OPTION_NAMES:
        if name in merged:
            value = check_option(spec, name, merged[name]) if spec else merged[name]
            if value is None:
                continue
            needed = partners_needed(catalogue, name, value)
            if needed and changes.get(name) is not None:  # one saved by an older version is skipped when used
                raise BadInput(
                    _(
                        "{option} {value} cannot be a default: it needs {needed} as well, which a default cannot "
                        "give. Choose another {option}.",
                        option=name,
                        value=value,
                        needed=needed,
                    )
                )
            checked[name] = value
    if model_given and spec is not None and spec.images == "required":
        # after the options, so a value the model refuses (Kontext and webp) is named as it always was
        drawers = ", ".join(other.name for other in catalogue.values() if other.images != "required")
        raise BadInput(
            _(
                "{model} edits an image and cannot make one from a prompt alone, so it cannot be a default "
                "model. Choose one of: {models}.",
                model=spec.name,
                models=drawers,
            )
        )
    return checked


def partners_needed(catalogue: Catalogue, name: str, value: object) -> str:
    """The options some model takes only together with `name` = `value` ("width, height" for aspect_ratio
    custom), which no default gives: such a default is never used. Empty for any other value."""
    for spec in catalogue.values():
        if needed := partners(spec, name, value):
            return ", ".join(needed)
    return ""


def unusable_defaults(catalogue: Catalogue, defaults: Mapping[str, object]) -> list[Text]:
    """A warning for each saved default that /imagine skips, since it needs options no default gives (saved by
    an older version, which allowed them), for /imagine-settings show and /imagine-prefs show."""
    warnings: list[Text] = []
    for name in OPTION_NAMES:
        value = defaults.get(name)
        needed = partners_needed(catalogue, name, value) if value is not None else ""
        if needed:
            warnings.append(
                _(
                    "⚠️ The default {option} {value} needs {needed} as well, which a default cannot give, so "
                    "/imagine leaves it out.",
                    option=name,
                    value=value,
                    needed=needed,
                )
            )
    return warnings


def _editing_model(catalogue: Catalogue, name: str) -> str:
    spec = catalogue.resolve(name)
    assert spec is not None
    if not spec.takes_images:
        editors = ", ".join(other.name for other in catalogue.values() if other.takes_images)
        raise BadInput(
            _(
                "{model} does not edit images; the editing model can be one of: {models}.",
                model=spec.name,
                models=editors,
            )
        )
    return spec.id


def varying_model(catalogue: Catalogue, name: str) -> str:
    """The full id of a model that can make variations; BadInput naming those that can, for any other."""
    spec = catalogue.resolve(name)
    assert spec is not None
    if not can_vary(spec.id):
        names = ", ".join(model_id.split("/")[-1] for model_id in MECHANISMS)
        raise BadInput(
            _("{model} cannot make variations of an image; choose one of: {names}.", model=spec.name, names=names)
        )
    return spec.id


def effective(catalogue: Catalogue, guild: GuildSettings | None, *, default_model: str) -> list[Effective]:
    defaults = guild.defaults if guild else {}
    model_id = str(defaults.get("model") or default_model)
    spec = catalogue.get(model_id)
    rows = [Effective("model", model_id, "server" if "model" in defaults else "built-in")]
    for name in OPTION_NAMES:
        if name in defaults:
            rows.append(Effective(name, defaults[name], "server"))
            continue
        param = spec.params.get(name) if spec else None
        rows.append(Effective(name, param.default if param else "—", "built-in"))
    # L10N: the value of edit_model and variation_model when the server chose none, in /imagine-settings show
    automatic = _("automatic")
    edit = defaults.get(EDIT_MODEL_SETTING)
    rows.append(Effective(EDIT_MODEL_SETTING, edit or automatic, "server" if edit else "built-in"))
    chosen = defaults.get(VARIATION_MODEL_SETTING)
    rows.append(Effective(VARIATION_MODEL_SETTING, chosen or automatic, "server" if chosen else "built-in"))
    return rows


def allowed_after(
    catalogue: Catalogue,
    current: list[str] | None,
    *,
    allow: str | None,
    deny: str | None,
    everything: bool,
    only_standard: bool,
) -> list[str] | None:
    """The new allow-list (None = every catalogue model)."""
    if everything:
        return None
    if only_standard:
        return [spec.id for spec in catalogue.values() if not spec.premium]
    allowed = list(current) if current is not None else list(catalogue)
    for name, adding in ((allow, True), (deny, False)):
        if name is None:
            continue
        spec = catalogue.resolve(name)
        assert spec is not None
        if adding and spec.id not in allowed:
            allowed.append(spec.id)
        if not adding and spec.id in allowed:
            allowed.remove(spec.id)
    if not allowed:
        raise BadInput(_("That would leave no model allowed; allow another one first."))
    return None if set(allowed) == set(catalogue) else sorted(allowed)


def limits_after(
    current: Mapping[str, float | int], changes: Mapping[str, float | int | None]
) -> dict[str, float | int]:
    updated = dict(current)
    for name, value in changes.items():
        if value is None:
            continue
        if name not in LIMIT_NAMES:
            raise BadInput(_("Unknown limit `{name}`.", name=name))
        if value < 0:
            raise BadInput(_("{name} cannot be negative.", name=name))
        if name == "jobs_in_flight" and value < 1:
            raise BadInput(_("jobs_in_flight must be at least 1."))
        if name in BUDGET_SETTINGS:
            if not math.isfinite(value) or value > MAX_BUDGET_USD:
                raise BadInput(
                    _("{option} must be a number of US dollars up to {most}.", option=name, most=MAX_BUDGET_USD)
                )
            updated[name] = round(float(value), 6)  # to the millionth of a dollar, as costs are counted
            continue
        updated[name] = value
    return updated


def describe_limits(limits: Limits) -> list[Text]:
    def per_day(value: int | None) -> Text:
        return _("no limit") if value is None else _("{count} per day", count=value)

    def budget(day: int | None, month: int | None) -> Text:
        if day and month:
            return _("{day} per day, {month} per 30 days", day=dollars(day), month=dollars(month))
        if day:
            return _("{amount} per day", amount=dollars(day))
        if month:
            return _("{amount} per 30 days", amount=dollars(month))
        return _("no budget")

    return [
        _("Cooldown between a user's images: {seconds} s", seconds=f"{limits.cooldown_seconds:g}"),
        _("Jobs in flight per user: {count}", count=limits.jobs_in_flight),
        _("Images per user: {quota}", quota=per_day(limits.images_per_user_per_day)),
        _("Images for the whole server: {quota}", quota=per_day(limits.images_per_guild_per_day)),
        _("Budget per user: {budget}", budget=budget(limits.user_budget_day, limits.user_budget_month)),
        _("Budget for the whole server: {budget}", budget=budget(limits.guild_budget_day, limits.guild_budget_month)),
    ]


def model_list(specs: list[ModelSpec]) -> Text:
    names = ", ".join(spec.name for spec in specs)
    return verbatim(names) if names else _("none")
