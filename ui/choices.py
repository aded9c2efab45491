"""Small helpers shared by the commands' autocompletes and option handling."""

from __future__ import annotations

from collections.abc import Iterable

from discord import app_commands

from services.errors import BadInput
from services.rules.catalogue import Catalogue, ModelSpec


def model_choices(specs: Iterable[ModelSpec], current: str) -> list[app_commands.Choice[str]]:
    """Autocomplete choices for the models in `specs` whose id or label contains what was typed."""
    needle = current.lower()
    return [
        app_commands.Choice(name=spec.label, value=spec.id)
        for spec in specs
        if needle in spec.id.lower() or needle in spec.label.lower()
    ][:25]


def param_choices(catalogue: Catalogue, model: str, param: str, current: str) -> list[app_commands.Choice[str]]:
    """Autocomplete choices: the values `model` (of `catalogue`) takes for `param` that contain what was typed.
    A custom ratio is left out: it needs a width and height, which only `python bot.py generate` takes."""
    try:
        spec = catalogue.resolve(model)
    except BadInput:
        return []
    if spec is None:
        return []
    values = [v for v in spec.choices(param) if v != "custom" and current.lower() in v.lower()]
    return [app_commands.Choice(name=v, value=v) for v in values][:25]


def given(**options: object) -> dict[str, object]:
    """The options a user actually gave (Discord passes the others as None)."""
    return {name: value for name, value in options.items() if value is not None}
