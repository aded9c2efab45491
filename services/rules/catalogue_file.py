"""Reading the model catalogue from TOML: the built-in models.toml, then an operator's own file on top.

Every mistake is a `CatalogueError` whose message is one line naming the file, the place in it and what is
wrong, so start-up can stop with it (see services/config.py, MODELS_FILE). The format is described at the
top of models.toml.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

from services.rules.model_spec import (
    MATCH_INPUT,
    Flag,
    FloatRange,
    ImagePolicy,
    IntRange,
    ModelSpec,
    OneOf,
    Param,
    Price,
    Rates,
    Text,
)

BUILTIN = Path(__file__).with_name("models.toml")
MODEL_ID = re.compile(r"\w[\w.-]*/\w[\w.-]*", re.ASCII)
MODEL_KEYS = frozenset({
    "label", "output", "max_outputs", "typical_seconds", "premium", "images", "price", "params",
    "extends", "remove_params", "enabled",
})  # fmt: skip
REQUIRED_KEYS = ("label", "output", "max_outputs", "params")
IMAGE_KEYS = frozenset({"param", "list", "max", "required", "safety_cap"})
RATE_KEYS = frozenset({"per_run", "per_image", "per_input_mp", "per_output_mp"})
PARAM_KEYS = {
    "choice": frozenset({"type", "values", "default"}),
    "int": frozenset({"type", "min", "max", "default", "multiple_of", "only_with"}),
    "number": frozenset({"type", "min", "max", "default"}),
    "flag": frozenset({"type", "default"}),
    "text": frozenset({"type", "default"}),
}
DEFAULT_TYPICAL_SECONDS = (2.0, 15.0)
# Labels, model ids and choice values become autocomplete choices, whose name and value Discord caps at 100
# characters: one too long and Discord refuses the whole list.
CHOICE_CHARS = 100
Table = dict[str, Any]


class CatalogueError(ValueError):
    """A mistake in a catalogue file; the message is one line."""


def load_catalogue(extra: Path | str | None = None) -> dict[str, ModelSpec]:
    """The built-in models, with an operator's file (if any) adding models or overriding some of their values."""
    tables = dict(_builtin_tables())
    if extra is not None:
        path = Path(extra)
        tables = _merge_files(tables, _read(path), path)
    specs = {}
    for model_id, table in tables.items():
        if table.get("enabled", True) is False:
            continue
        where = f"{_origin(table)}: models.{_quoted(model_id)}"
        specs[model_id] = _build(model_id, table, where)
    _check_short_names(specs, str(extra or BUILTIN))
    return specs


def _origin(table: Table) -> str:
    return str(table.get("_file", BUILTIN))


@cache
def _builtin_tables() -> Mapping[str, Table]:
    return _merge_files({}, _read(BUILTIN), BUILTIN)


def _read(path: Path) -> Table:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogueError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CatalogueError(f"{path}: is a folder, not a file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogueError(f"{path}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(data) - {"models"}
    if unknown:
        raise CatalogueError(f'{path}: unknown top-level key `{sorted(unknown)[0]}` (only [models."owner/name"])')
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise CatalogueError(f"{path}: `models` must be a table of models")
    return models


def _merge_files(known: Mapping[str, Table], models: Table, path: Path) -> dict[str, Table]:
    """Each table of `models` over the model it extends or overrides; in file order, so `extends` looks back."""
    result = dict(known)
    for model_id, table in models.items():
        where = f"{path}: models.{_quoted(model_id)}"
        if not MODEL_ID.fullmatch(model_id):
            raise CatalogueError(f"{where}: a model id is owner/name, e.g. black-forest-labs/flux-2-pro")
        _fits_a_choice(model_id, where, "the model id")
        if not isinstance(table, dict):
            raise CatalogueError(f"{where}: must be a table")
        _no_unknown(table, MODEL_KEYS, where)
        base_id = table.get("extends")
        if base_id is not None:
            if not isinstance(base_id, str) or base_id not in result:
                raise CatalogueError(f"{where}: extends `{base_id}`, which is not a model defined before it")
            base = result[base_id]
        else:
            base = result.get(model_id, {})  # an operator's table for a known model changes only what it names
        _flag(table.get("enabled", True), f"{where}.enabled")
        result[model_id] = {**_merged(base, table, where), "_file": path}
    return result


def _merged(base: Table, table: Table, where: str) -> Table:
    merged = {key: value for key, value in base.items() if key not in ("extends", "remove_params", "_file")}
    params = dict(base.get("params", {}))
    new_params = table.get("params", {})
    if not isinstance(new_params, dict):
        raise CatalogueError(f"{where}.params: must be a table of parameters")
    params.update(new_params)
    removed = table.get("remove_params", [])
    if not isinstance(removed, list) or not all(isinstance(name, str) for name in removed):
        raise CatalogueError(f"{where}.remove_params: must be a list of parameter names")
    for name in removed:
        if name not in params:
            raise CatalogueError(f"{where}.remove_params: there is no parameter `{name}` to remove")
        del params[name]
    merged.update({key: value for key, value in table.items() if key not in ("extends", "remove_params")})
    merged["params"] = params
    return merged


def _build(model_id: str, table: Table, where: str) -> ModelSpec:
    for key in REQUIRED_KEYS:
        if key not in table:
            raise CatalogueError(f"{where}: `{key}` is missing")
    label = _text(table["label"], f"{where}.label")
    _fits_a_choice(label, f"{where}.label", "the label")
    output = table["output"]
    if output not in ("list", "string"):
        raise CatalogueError(f'{where}.output: must be "list" or "string", got {output!r}')
    max_outputs = _integer(table["max_outputs"], f"{where}.max_outputs", low=1)
    params = {name: _param(value, f"{where}.params.{name}") for name, value in table["params"].items()}
    _check_links(params, f"{where}.params")
    if max_outputs > 1:
        count = params.get("num_outputs")
        if not isinstance(count, IntRange) or count.high != max_outputs:
            raise CatalogueError(f"{where}.params: a model with max_outputs {max_outputs} needs num_outputs 1-"
                                 f"{max_outputs}")  # fmt: skip
    images, image_param, image_list, max_images, cap = _images(table.get("images"), f"{where}.images", params)
    return ModelSpec(
        id=model_id,
        label=label,
        params=params,
        list_output=output == "list",
        max_outputs=max_outputs,
        images=images,
        image_param=image_param,
        image_list=image_list,
        max_images=max_images,
        typical_seconds=_typical(table.get("typical_seconds"), f"{where}.typical_seconds"),
        premium=_flag(table.get("premium", False), f"{where}.premium"),
        image_safety_cap=cap,
        price=_price(table["price"], f"{where}.price", params) if "price" in table else None,
    )


def _param(raw: object, where: str) -> Param:
    if not isinstance(raw, dict):
        raise CatalogueError(f'{where}: must be a table like {{ type = "int", min = 1, max = 4 }}')
    kind = raw.get("type")
    if kind not in PARAM_KEYS:
        raise CatalogueError(f"{where}.type: must be one of {', '.join(PARAM_KEYS)}, got {kind!r}")
    _no_unknown(raw, PARAM_KEYS[kind], where)
    default = raw.get("default")
    if kind == "choice":
        values = raw.get("values")
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
            raise CatalogueError(f"{where}.values: must be a list of one or more texts")
        if len(set(values)) != len(values):
            raise CatalogueError(f"{where}.values: lists a value twice")
        for value in values:
            _fits_a_choice(value, f"{where}.values", f"the value {value[:20]!r}…")
        if default is not None and default not in values:
            raise CatalogueError(f"{where}.default: {default!r} is not one of its values")
        return OneOf(tuple(values), default)
    if kind == "int":
        low = _integer(raw.get("min"), f"{where}.min")
        high = _integer(raw.get("max"), f"{where}.max", low=low)
        step = _integer(raw["multiple_of"], f"{where}.multiple_of", low=1) if "multiple_of" in raw else None
        if default is not None:
            default = _integer(default, f"{where}.default", low=low, high=high)
            if step and default % step:
                raise CatalogueError(f"{where}.default: {default} is not a multiple of {step}")
        only_with = _condition(raw["only_with"], f"{where}.only_with") if "only_with" in raw else None
        return IntRange(low, high, default, step, only_with)
    if kind == "number":
        low_f = _number(raw.get("min"), f"{where}.min")
        high_f = _number(raw.get("max"), f"{where}.max")
        if low_f > high_f:
            raise CatalogueError(f"{where}: min {low_f:g} is above max {high_f:g}")
        if default is not None:
            default = _number(default, f"{where}.default")
            if not low_f <= default <= high_f:
                raise CatalogueError(f"{where}.default: {default:g} is outside {low_f:g}-{high_f:g}")
        return FloatRange(low_f, high_f, default)
    if kind == "flag":
        return Flag(None if default is None else _flag(default, f"{where}.default"))
    return Text(None if default is None else _text(default, f"{where}.default"))


def _check_links(params: Mapping[str, Param], where: str) -> None:
    """`only_with` must name a choice the model has, with that value among its choices."""
    for name, param in params.items():
        if isinstance(param, IntRange) and param.only_with:
            other, value = param.only_with
            if value not in _choices(params.get(other)):
                raise CatalogueError(f"{where}.{name}.only_with: the model has no {other} choice `{value}`")


def _choices(param: Param | None) -> tuple[str, ...]:
    return param.values if isinstance(param, OneOf) else ()


ImageFields = tuple[ImagePolicy, str | None, bool, int, int | None]


def _images(raw: object, where: str, params: Mapping[str, Param]) -> ImageFields:
    if raw is None:
        if any(MATCH_INPUT in _choices(param) for param in params.values()):
            raise CatalogueError(f"{where}: the model offers {MATCH_INPUT} but takes no images")
        return "none", None, False, 0, None
    if not isinstance(raw, dict):
        raise CatalogueError(f'{where}: must be a table like {{ param = "input_images", list = true, max = 8 }}')
    _no_unknown(raw, IMAGE_KEYS, where)
    param = _text(raw.get("param"), f"{where}.param")
    if param in params:
        raise CatalogueError(f"{where}.param: `{param}` is also one of the model's params")
    as_list = _flag(raw.get("list", False), f"{where}.list")
    most = _integer(raw.get("max"), f"{where}.max", low=1)
    if not as_list and most != 1:
        raise CatalogueError(f"{where}.max: a model that takes one image (no `list = true`) takes at most 1")
    required = _flag(raw.get("required", False), f"{where}.required")
    cap = _integer(raw["safety_cap"], f"{where}.safety_cap", low=0) if "safety_cap" in raw else None
    return ("required" if required else "optional"), param, as_list, most, cap


def _price(raw: object, where: str, params: Mapping[str, Param]) -> Price:
    if not isinstance(raw, dict):
        raise CatalogueError(f"{where}: must be a table like {{ per_image = 0.04 }}")
    _no_unknown(raw, RATE_KEYS | {"when"}, where)
    base = _rates(raw, where)
    variants = []
    when = raw.get("when", {})
    if not isinstance(when, dict):
        raise CatalogueError(f'{where}.when: must be a table like {{ "go_fast=false" = {{ per_output_mp = 0.014 }} }}')
    for condition, rates in when.items():
        name, value = _condition(condition, f"{where}.when")
        if name not in params:
            raise CatalogueError(f"{where}.when: the model has no parameter `{name}`")
        if not isinstance(rates, dict):
            raise CatalogueError(f"{where}.when.{_quoted(condition)}: must be a table of rates")
        _no_unknown(rates, RATE_KEYS, f"{where}.when.{_quoted(condition)}")
        named = _rates(rates, f"{where}.when.{_quoted(condition)}")
        # A variant changes only the rates it names.
        variants.append((name, value, replace(base, **{key: getattr(named, key) for key in rates})))
    return Price(base, tuple(variants))


def _rates(raw: Mapping[str, Any], where: str) -> Rates:
    values = {key: _number(raw[key], f"{where}.{key}") for key in RATE_KEYS if key in raw}
    for key, value in values.items():
        if value < 0:
            raise CatalogueError(f"{where}.{key}: a price cannot be negative")
    return Rates(**values)


def _typical(raw: object, where: str) -> tuple[float, float]:
    if raw is None:
        return DEFAULT_TYPICAL_SECONDS
    if not isinstance(raw, list) or len(raw) != 2:
        raise CatalogueError(f"{where}: must be [low, high] in seconds, e.g. [5, 40]")
    low, high = (_number(value, where) for value in raw)
    if not 0 < low < high:
        raise CatalogueError(f"{where}: must be two numbers with 0 < low < high, got [{low:g}, {high:g}]")
    return low, high


def _condition(raw: object, where: str) -> tuple[str, str]:
    if not isinstance(raw, str) or raw.count("=") != 1 or not all(part.strip() for part in raw.split("=")):
        raise CatalogueError(f'{where}: must read "param=value", got {raw!r}')
    name, value = (part.strip() for part in raw.split("="))
    return name, value


def _integer(raw: object, where: str, *, low: int | None = None, high: int | None = None) -> int:
    if not isinstance(raw, int) or isinstance(raw, bool):
        raise CatalogueError(f"{where}: must be a whole number, got {raw!r}")
    if low is not None and raw < low:
        raise CatalogueError(f"{where}: must be at least {low}, got {raw}")
    if high is not None and raw > high:
        raise CatalogueError(f"{where}: must be at most {high}, got {raw}")
    return raw


def _number(raw: object, where: str) -> float:
    if not isinstance(raw, int | float) or isinstance(raw, bool) or not math.isfinite(raw):
        raise CatalogueError(f"{where}: must be a number, got {raw!r}")
    return float(raw)


def _flag(raw: object, where: str) -> bool:
    if not isinstance(raw, bool):
        raise CatalogueError(f"{where}: must be true or false, got {raw!r}")
    return raw


def _text(raw: object, where: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise CatalogueError(f"{where}: must be a non-empty text, got {raw!r}")
    return raw


def _fits_a_choice(text: str, where: str, what: str) -> None:
    if len(text) > CHOICE_CHARS:
        raise CatalogueError(
            f"{where}: {what} is {len(text)} characters long; Discord takes at most {CHOICE_CHARS} in a choice"
        )


def _no_unknown(table: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise CatalogueError(f"{where}: unknown key `{unknown[0]}` (known: {', '.join(sorted(known))})")


def _check_short_names(specs: Mapping[str, ModelSpec], where: str) -> None:
    seen: dict[str, str] = {}
    for spec in specs.values():
        if spec.name in seen:
            raise CatalogueError(f"{where}: {seen[spec.name]} and {spec.id} share the short name {spec.name}")
        seen[spec.name] = spec.id


def _quoted(model_id: str) -> str:
    return f'"{model_id}"' if not re.fullmatch(r"[\w-]+", model_id) else model_id
