"""Midjourney-style parameters typed in a prompt: `a castle on a hill --ar 16:9 --seed 42`.

People who come from Midjourney type them; sent as they are, they would become part of what is drawn. This is
the one place they are read, for /imagine, /blend, the edit modal and `python bot.py generate`: `apply` takes
them out of the prompt and turns them into options, which are then judged against the model like any option
(a ratio the model does not offer is refused, naming the ones it offers).

An unknown parameter, or `--no` (FLUX takes no negative prompt), is refused with a message that says so.
When a parameter and an option given with the command disagree, the command's option wins and a note says so.
An em dash (`—ar`, as phones autocorrect `--`) counts as `--`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from services.errors import BadInput
from services.rules.catalogue import Catalogue, shown
from services.text import Text, _


@dataclass(frozen=True)
class Known:
    option: str  # the option it sets
    example: str  # how it is used, for messages
    read: Callable[[str], object] | None = str  # None: a switch that takes no value


def _megapixels(text: str) -> str:
    value = text.strip().lower().removesuffix("mp")
    if value in ("match", "match_input_image"):
        return "match_input_image"
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return f"{float(value):g} MP"
    raise BadInput(_("`--res` takes megapixels (0.5, 1, 2 or 4) or `match`; got `{value}`.", value=shown(text)))


def _ratio(text: str) -> str:
    # "16x9" and "16/9" are common slips for 16:9; anything else goes to the model's own check as it is.
    return re.sub(r"^(\d+)\s*[x/]\s*(\d+)$", r"\1:\2", text.strip())


PARAMS: dict[str, Known] = {
    "ar": Known("aspect_ratio", "--ar 16:9", _ratio),
    "aspect": Known("aspect_ratio", "--aspect 16:9", _ratio),
    "seed": Known("seed", "--seed 42"),
    "model": Known("model", "--model flux-2-pro"),
    "m": Known("model", "--m flux-2-pro"),
    "n": Known("num_outputs", "--n 4"),
    "format": Known("output_format", "--format png"),
    "quality": Known("output_quality", "--quality 90"),
    "res": Known("resolution", "--res 2", _megapixels),
    "raw": Known("raw", "--raw", None),
    "enhance": Known("enhance", "--enhance", None),  # ✨ prompt help (services/jobs/admission.py), not a model's
}
NEGATIVE = "no"
_PARAM = re.compile(r"(?<!\S)(?:--|—)([A-Za-z][\w-]*)")
_VALUE = re.compile(r"[ \t]+([^\s]+)")


@dataclass(frozen=True)
class Applied:
    prompt: str  # without its parameters
    given: dict[str, object]  # the command's options, with the parameters' values where it gave none
    notes: tuple[Text, ...] = ()  # which one won where a parameter and an option disagreed


@dataclass(frozen=True)
class Parsed:
    prompt: str
    options: dict[str, object]
    typed: dict[str, str]  # option -> the parameter as typed, e.g. "--ar 16:9"


def parse(prompt: str) -> Parsed:
    """Take the parameters out of `prompt`. Raises BadInput for an unknown one, `--no`, or a missing value."""
    options: dict[str, object] = {}
    typed: dict[str, str] = {}
    kept: list[str] = []
    position = 0
    while (found := _PARAM.search(prompt, position)) is not None:
        name = found[1].lower()
        known = PARAMS.get(name)
        if name == NEGATIVE:
            raise BadInput(
                _(
                    "FLUX takes no negative prompt, so `--no` can't be used: say what you want instead "
                    "(e.g. `an empty beach` rather than `a beach --no people`)."
                )
            )
        if known is None:
            listed = ", ".join(f"`--{n}`" for n in PARAMS)
            raise BadInput(
                _("`--{name}` is not a parameter I know. Parameters: {known}.", name=shown(found[1]), known=listed)
            )
        end = found.end()
        if known.read is None:
            value: object = True
            spelled = f"--{name}"
        else:
            following = _VALUE.match(prompt, end)
            if following is None or _PARAM.fullmatch(following[1]):
                raise BadInput(_("`--{name}` needs a value, e.g. `{example}`.", name=name, example=known.example))
            value, spelled, end = known.read(following[1]), f"--{name} {following[1]}", following.end()
        if known.option in options:
            raise BadInput(
                _(
                    "`{first}` and `{second}` both set {option}: keep one.",
                    first=typed[known.option],
                    second=shown(spelled),
                    option=known.option,
                )
            )
        options[known.option], typed[known.option] = value, shown(spelled)
        kept.append(prompt[position : found.start()])
        position = end
    kept.append(prompt[position:])
    text = "".join(kept)
    if typed:  # close the gaps the parameters leave, on each line
        text = "\n".join(re.sub(r"[ \t]{2,}", " ", line).strip() for line in text.split("\n")).strip()
    return Parsed(text, options, typed)


def apply(prompt: str, given: Mapping[str, object], catalogue: Catalogue) -> Applied:
    """The prompt without its parameters, and `given` (options given with the command, None meaning not
    given) completed with them. Where both set an option and disagree, the command's option wins (a model
    named by its short name in one and its full id in the other, of `catalogue`, agrees)."""
    parsed = parse(prompt)
    merged = dict(given)
    notes: list[Text] = []
    for option, value in parsed.options.items():
        chosen = given.get(option)
        if chosen is None:
            merged[option] = value
        elif _same(catalogue, option, chosen, value):
            continue
        else:
            notes.append(
                _(
                    "`{typed}` in the prompt was not used: the {option} option (`{value}`) wins.",
                    typed=parsed.typed[option],
                    option=option,
                    value=shown(chosen),
                )
            )
    return Applied(parsed.prompt, merged, tuple(notes))


def _same(catalogue: Catalogue, option: str, a: object, b: object) -> bool:
    def norm(value: object) -> str:
        text = "".join(str(value).split()).lower()
        return catalogue.full_id(text) if option == "model" else text

    return norm(a) == norm(b)
