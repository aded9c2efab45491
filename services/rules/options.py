"""Turn what a user asked for into a job's model and input.

Precedence for every option: given in the command > the user's own preference > the server's default >
built-in. Preferences and defaults that the chosen model does not take are skipped (with a note when a
value had to be changed, e.g. a server default of webp for a Kontext model that only writes jpg/png).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from services.errors import BadInput
from services.rules.catalogue import MATCH_INPUT, MAX_SEED, Catalogue, IntRange, ModelSpec, OneOf, Request
from services.store.models import GuildSettings
from services.text import Text, _, joined, verbatim

OPTION_NAMES = ("aspect_ratio", "output_format", "output_quality", "num_outputs")


@dataclass(frozen=True)
class Resolved:
    model: str
    input: dict[str, object]
    notes: tuple[Text, ...] = ()

    @property
    def image_count(self) -> int:
        count = self.input.get("num_outputs", 1)
        return count if isinstance(count, int) else 1


@dataclass(frozen=True)
class RequestContext:
    """Everything besides the command's own options that shapes a request."""

    default_model: str
    catalogue: Catalogue  # the models in use
    allow_unknown_models: bool = False
    guild: GuildSettings | None = None
    user_prefs: Mapping[str, object] = field(default_factory=dict)


def allowed_models(context: RequestContext) -> list[ModelSpec]:
    allowed = context.guild.allowed_models if context.guild else None
    return [spec for spec in context.catalogue.values() if allowed is None or spec.id in allowed]


def chosen_model(given_model: object, context: RequestContext, *, images: int | None = None) -> str:
    """The model a request will use: given > the user's preference > the server's default > built-in."""
    return model_choice(given_model, context, images=images)[0]


def model_choice(given_model: object, context: RequestContext, *, images: int | None = None) -> tuple[str, str | None]:
    """The model a request will use, and the saved model (a preference or the server's default) passed over
    because the operator has since hidden or removed it or the server no longer allows it, if any; or, for a
    request with no input image (`images` 0), because it only edits images (older versions let one be saved).

    A stale saved model must not break /imagine for everyone, so it is skipped rather than refused; a model
    named in the command itself is still refused with a reason.
    """
    if given_model:
        return str(given_model), None
    guild_defaults = context.guild.defaults if context.guild else {}
    stale = None
    for candidate in (context.user_prefs.get("model"), guild_defaults.get("model")):
        if not candidate:
            continue
        if usable(str(candidate), context) and not (images == 0 and only_edits(str(candidate), context)):
            return str(candidate), stale
        stale = stale or str(candidate)
    return context.default_model, stale


def usable(model: str, context: RequestContext) -> bool:
    """Whether `model` is in the catalogue (or an allowed unknown one) and allowed where asked."""
    try:
        spec = context.catalogue.resolve(model, allow_unknown=context.allow_unknown_models)
    except BadInput:
        return False
    allowed = context.guild.allowed_models if context.guild else None
    return allowed is None or (spec.id if spec else model) in allowed


def only_edits(model: str, context: RequestContext) -> bool:
    """Whether `model` (a usable one) needs an input image: it cannot make one from a prompt alone."""
    spec = context.catalogue.resolve(model, allow_unknown=context.allow_unknown_models)
    return spec is not None and spec.images == "required"


def stale_note(stale: str, used: str, context: RequestContext) -> Text:
    """Says once, in the result's note or the refusal, that a saved model was passed over, and why."""
    model, used = stale.rsplit("/", maxsplit=1)[-1], used.rsplit("/", maxsplit=1)[-1]
    if usable(stale, context) and only_edits(stale, context):
        return _(
            "The saved model {model} only edits images, so {used} made this one from the prompt.",
            model=model,
            used=used,
        )
    return _("The saved model {model} is not available here, so {used} was used.", model=model, used=used)


def resolve(
    prompt: str,
    given: Mapping[str, object],
    image_urls: Sequence[str],
    context: RequestContext,
    *,
    seed: int | None = None,
) -> Resolved:
    """Validate and merge; raises BadInput with a message for the user."""
    guild_defaults = context.guild.defaults if context.guild else {}
    layers = [given, context.user_prefs, guild_defaults]
    model_name, stale = model_choice(given.get("model"), context, images=len(image_urls))
    spec = context.catalogue.resolve(model_name, allow_unknown=context.allow_unknown_models)
    model_id = spec.id if spec else model_name
    notes: list[Text] = [stale_note(stale, model_id, context)] if stale else []
    if context.guild and context.guild.allowed_models is not None and model_id not in context.guild.allowed_models:
        names = ", ".join(m.name for m in allowed_models(context))
        allowed = verbatim(names) if names else _("none")
        refusal = _(
            "This server does not allow {model}. Allowed here: {allowed}.",
            model=model_id.split("/")[-1],
            allowed=allowed,
        )
        if stale:
            gone = _("The saved model {model} is not available here.", model=stale.rsplit("/", maxsplit=1)[-1])
            refusal = joined([gone, refusal], " ")
        raise BadInput(refusal)

    options: dict[str, object] = {k: v for k, v in given.items() if k != "model" and v is not None}
    for layer in layers[1:]:
        for name in OPTION_NAMES:
            if name in options or layer.get(name) is None:
                continue
            if layer[name] == MATCH_INPUT and not image_urls:
                continue  # a default shaped by an input image means nothing without one
            value, note = _fit(spec, name, layer[name])
            if value is not None:
                options[name] = value
            if note:
                notes.append(note)
    options["seed"] = seed if seed is not None else options.get("seed", random.randint(0, MAX_SEED))
    model, model_input = context.catalogue.build_input(
        model_id, Request(prompt, options, tuple(image_urls)), allow_unknown=context.allow_unknown_models
    )
    return Resolved(model, model_input, tuple(notes))


def _fit(spec: ModelSpec | None, name: str, value: object) -> tuple[object | None, Text | None]:
    """A stored default as this model can take it: kept, mapped (with a note), or dropped."""
    if spec is None:
        return value, None
    param = spec.params.get(name)
    if param is None or partners(spec, name, value):
        return None, None  # partners: e.g. aspect_ratio custom, saved by an older version, needs a width and height
    if isinstance(param, OneOf) and str(value) not in param.values:
        if name == "output_format" and value == "webp" and "png" in param.values:
            return "png", _("{model} does not write webp, so png was used.", model=spec.name)
        return None, None
    if name == "num_outputs" and isinstance(value, int) and value > spec.max_outputs:
        return spec.max_outputs, None
    return value, None


def partners(spec: ModelSpec, name: str, value: object) -> tuple[str, ...]:
    """The options `spec` takes only together with `name` = `value` (width and height, for aspect_ratio custom).

    A saved default with partners is never used: neither the defaults, /imagine, /blend nor `--` parameters give them.
    """
    return tuple(
        other
        for other, param in spec.params.items()
        if isinstance(param, IntRange) and param.only_with == (name, str(value))
    )


EDIT_MODEL_SETTING = "edit_model"  # in a server's defaults, set with /imagine-settings set
VARIATION_MODEL_SETTING = "variation_model"


@dataclass(frozen=True)
class ModelNeed:
    """What a kind of job needs of its model, when the request names none (services/jobs/kinds/).

    The first allowed model that fits among: the server's choice for this kind (`setting`), the user's own
    model (where `personal`), the server's default model; else `preferred`; else the allowed model that fits
    and comes first by `rank`. None fits: BadInput `none_allowed`.
    """

    fits: Callable[[ModelSpec], bool]
    preferred: str
    none_allowed: Text
    setting: str | None = None
    personal: bool = False
    rank: Callable[[ModelSpec], int] = lambda spec: 0

    def pick(self, context: RequestContext) -> str:
        able = sorted((spec for spec in allowed_models(context) if self.fits(spec)), key=self.rank)
        ids = [spec.id for spec in able]
        defaults = context.guild.defaults if context.guild else {}
        candidates = [
            defaults.get(self.setting) if self.setting else None,
            context.user_prefs.get("model") if self.personal else None,
            defaults.get("model"),
        ]
        for candidate in candidates:
            if candidate and candidate in ids:
                return str(candidate)
        if not ids:
            raise BadInput(self.none_allowed)
        return self.preferred if self.preferred in ids else ids[0]
