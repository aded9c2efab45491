"""Small helpers shared by the commands' autocompletes and option handling."""

from __future__ import annotations

from collections.abc import Iterable

from discord import app_commands

from services.rules.catalogue import ModelSpec


def model_choices(specs: Iterable[ModelSpec], current: str) -> list[app_commands.Choice[str]]:
    """Autocomplete choices for the models in `specs` whose id or label contains what was typed."""
    needle = current.lower()
    return [
        app_commands.Choice(name=spec.label, value=spec.id)
        for spec in specs
        if needle in spec.id.lower() or needle in spec.label.lower()
    ][:25]


def given(**options: object) -> dict[str, object]:
    """The options a user actually gave (Discord passes the others as None)."""
    return {name: value for name, value in options.items() if value is not None}
