"""Request bodies checked against Discord's own OpenAPI description, as the real Discord would check them.

The description is the part of Discord's spec the fake serves, cut out by fakes/openapi/extract.py.
Its conventions, the ones Discord documents for reading its description:
a ``oneOf`` means "one of these shapes" and is checked as ``anyOf``; integer fields also accept strings of
digits, and snowflakes (strings of digits in the spec) also accept integers. ``format`` is not asserted
(embed image URLs may be ``attachment://`` references). Multipart requests are checked by their ``payload_json``.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator, TypeChecker
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import extend

from fakes.discord_models import JSON, DiscordHTTPError

SPEC_FILE = Path(__file__).parent / "openapi" / "discord-requests.json"
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Violation:
    """A request body Discord would refuse: where in the body, and why."""

    method: str
    path: str  # as requested, without /api/v10
    template: str  # the spec's path, e.g. /webhooks/{webhook_id}/{webhook_token}/messages/@original
    operation: str  # the spec's operationId
    field: str  # dotted path in the body, e.g. "data.embeds.0.fields.0.name"; "" for the body itself
    code: str  # Discord's error code for the field, e.g. BASE_TYPE_MAX_LENGTH
    message: str

    def __str__(self) -> str:
        return f"{self.method} {self.template} ({self.operation}): {self.field or '<body>'}: {self.message}"


def _is_integer(checker: TypeChecker, instance: object) -> bool:
    if isinstance(instance, str):
        return _DIGITS.fullmatch(instance) is not None
    return bool(Draft202012Validator.TYPE_CHECKER.is_type(instance, "integer"))


# Draft 2020-12 (what OpenAPI 3.1 uses) with Discord's integers
_DiscordValidator = extend(  # type: ignore[no-untyped-call]  # jsonschema's stubs leave extend() untyped
    Draft202012Validator, type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer)
)


def discord_conventions(node: Any) -> Any:
    """A copy of a schema with the spec's conventions made explicit for a JSON Schema validator."""
    if isinstance(node, list):
        return [discord_conventions(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: discord_conventions(value) for key, value in node.items() if key != "oneOf"}
    if "oneOf" in node:
        shapes = discord_conventions(node["oneOf"])
        if "anyOf" in out:  # both on one node: each must hold
            out["allOf"] = [*out.get("allOf", []), {"anyOf": out.pop("anyOf")}, {"anyOf": shapes}]
        else:
            out["anyOf"] = shapes
    if node.get("format") == "snowflake":
        kinds = node.get("type", "string")
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        out["type"] = [*kinds, "integer"]
        out["minimum"] = 0
    return out


def integers_in_digits(node: Any) -> Any:
    """A copy of a schema (with the conventions made explicit) for a validator without custom types: where a type
    admits integers but not strings, strings of digits are admitted too, as `_is_integer` does."""
    if isinstance(node, list):
        return [integers_in_digits(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: integers_in_digits(value) for key, value in node.items()}
    kinds = node.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if isinstance(kinds, list) and "integer" in kinds and "string" not in kinds:
        out["type"] = [*kinds, "string"]
        out["pattern"] = _DIGITS.pattern.join("^$")  # only strings are held to a pattern
    return out


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    operation_id: str
    pattern: re.Pattern[str]
    body_required: bool
    validator: Validator | None  # None: the operation takes no body
    # The same schema compiled by a faster validator, which tells only whether a body holds: most bodies do, and
    # only the others are walked again by `validator` to say why (jsonschema's walk was most of the suite's CPU).
    quick: jsonschema_rs.Validator | None


def _path_pattern(template: str) -> re.Pattern[str]:
    parts = [r"[^/]+" if re.fullmatch(r"\{\w+\}", seg) else re.escape(seg) for seg in template.split("/")]
    return re.compile("/".join(parts))


class RequestBodies:
    """Compiled once per description; ``check`` finds the operation for a request and validates its body."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        components = discord_conventions(spec.get("components", {}))
        self.operations: list[Operation] = []
        for template, methods in spec["paths"].items():
            for method, operation in methods.items():
                body = operation.get("requestBody")
                validator = quick = None
                if body is not None:
                    schema = discord_conventions(body["content"]["application/json"]["schema"])
                    # refs are "#/components/schemas/X": give the body schema the components as its root
                    validator = _DiscordValidator(schema | {"components": components})
                    quick = jsonschema_rs.Draft202012Validator(integers_in_digits(validator.schema))
                required = bool(body and body.get("required"))
                op = Operation(
                    method.upper(),
                    template,
                    operation["operationId"],
                    _path_pattern(template),
                    required,
                    validator,
                    quick,
                )
                self.operations.append(op)
        # literal segments win over parameters: /messages/@original before /messages/{message_id}
        self.operations.sort(key=lambda op: -sum(not s.startswith("{") for s in op.template.split("/")))

    def operation(self, method: str, path: str) -> Operation | None:
        return next((op for op in self.operations if op.method == method and op.pattern.fullmatch(path)), None)

    def check(self, method: str, path: str, body: Any, *, has_files: bool = False) -> list[Violation]:
        """What Discord would refuse in ``body`` (the parsed JSON or payload_json; None when there was none)."""
        op = self.operation(method, path)
        if op is None or op.validator is None:
            return []  # a route the description does not cover (the fake answers 404) or one that takes no body
        if body is None:
            if has_files:
                body = {}  # files without payload_json
            elif op.body_required:
                return [
                    Violation(
                        method, path, op.template, op.operation_id, "", "BASE_TYPE_REQUIRED", "A body is required"
                    )
                ]
            else:
                return []
        if op.quick is not None and op.quick.is_valid(body):
            return []
        return [
            Violation(method, path, op.template, op.operation_id, field, code, message)
            for error in op.validator.iter_errors(body)
            for field, code, message in _explain(error)
        ]


def _field(error: ValidationError, *more: str) -> str:
    return ".".join([*(str(p) for p in error.absolute_path), *more])


def _explain(error: ValidationError) -> Iterator[tuple[str, str, str]]:
    """(field, Discord error code, message) for one validation error, worded like Discord's."""
    limit: Any = error.validator_value
    if error.validator == "anyOf" and error.context:
        yield from _explain_union(error)
        return
    if error.validator == "required":
        for name in limit:
            if isinstance(error.instance, dict) and name not in error.instance:
                yield _field(error, name), "BASE_TYPE_REQUIRED", "This field is required"
        return
    worded = {
        "maxLength": ("BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."),
        "maxItems": ("BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."),
        "maxProperties": ("BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."),
        "minLength": ("BASE_TYPE_MIN_LENGTH", f"Must be {limit} or more in length."),
        "minItems": ("BASE_TYPE_MIN_LENGTH", f"Must be {limit} or more in length."),
        "maximum": ("NUMBER_TYPE_MAX", f"Value should be less than or equal to {limit}."),
        "minimum": ("NUMBER_TYPE_MIN", f"Value should be greater than or equal to {limit}."),
        "enum": ("BASE_TYPE_CHOICES", f"Value must be one of {limit}."),
        "const": ("BASE_TYPE_CHOICES", f"Value must be one of [{limit!r}]."),
        "pattern": ("STRING_TYPE_REGEX", f"String value did not match validation regex {limit}."),
        "type": ("BASE_TYPE_CONVERT", f"Must be of type {limit}."),
    }
    code, message = worded.get(str(error.validator), ("BASE_TYPE_INVALID", _short(error.message)))
    yield _field(error), code, message


def _explain_union(error: ValidationError) -> Iterator[tuple[str, str, str]]:
    """A value that fits none of a union's shapes. Like Discord, pick the shape its ``type`` field (or its JSON
    type) names and report what is wrong inside that shape; if no shape has that type, say which types exist."""
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context or []:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)

    def names_another_shape(sub: ValidationError) -> bool:
        where = tuple(sub.relative_path)
        return where == ("type",) or (where == () and sub.validator == "type")

    fitting = [subs for subs in branches.values() if not any(names_another_shape(sub) for sub in subs)]
    if fitting:
        for sub in min(fitting, key=len):
            yield from _explain(sub)
        return
    allowed: list[Any] = []
    for sub in error.context or []:
        if tuple(sub.relative_path) == ("type",) and sub.validator in ("enum", "const"):
            value: Any = sub.validator_value
            values = value if sub.validator == "enum" else [value]
            allowed += [v for v in values if v not in allowed]
    if allowed and isinstance(error.instance, dict):
        yield _field(error, "type"), "UNION_TYPE_CHOICES", f"Value must be one of {sorted(allowed)}."
    else:
        yield _field(error), "UNION_TYPE_CHOICES", _short(error.message)


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def invalid_form_body(violations: list[Violation]) -> DiscordHTTPError:
    """Discord's 400 / 50035 answer, with an ``errors`` tree keyed by the body's fields."""
    errors: JSON = {}
    for v in violations:
        node = errors
        for part in v.field.split(".") if v.field else []:
            node = node.setdefault(part, {})
        node.setdefault("_errors", []).append({"code": v.code, "message": v.message})
    return DiscordHTTPError(400, 50035, "Invalid Form Body", errors)


@functools.cache
def request_bodies(spec_file: Path = SPEC_FILE) -> RequestBodies:
    """Loaded and compiled once per process, shared by every fake."""
    return RequestBodies(json.loads(spec_file.read_text(encoding="utf-8")))
