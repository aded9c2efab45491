"""`python bot.py generate PROMPT ...`: one prediction with no Discord, to check a key and try models.

Progress goes to stderr, the written file paths to stdout (one a line). Exit status: 0 done,
1 the prediction failed or timed out, 2 bad input or configuration (nothing sent), 130/143 stopped by
SIGINT/SIGTERM (the prediction, if one was made, is cancelled and its id printed; see cli/interrupt.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TextIO

from cli.interrupt import CREATE_GRACE, Interrupted, StopSignal, run_stoppable
from cli.out_dir import check_out_dir
from services.cometapi.files import as_image, encode_data_uri
from services.cometapi.polling import Update
from services.cometapi.predictions import PROCESSING, STARTING, SUCCEEDED
from services.cometapi.service import PredictionService, Result
from services.config import Settings, configure_logging, load_settings
from services.errors import (
    AuthError,
    BadInput,
    ConfigError,
    Rejected,
    ServiceError,
)
from services.rules.catalogue import (
    MAX_SEED,
    ImageRefusal,
    NeedsImage,
    Request,
    ShapeNeedsImage,
    TakesNoImage,
    built_in,
)
from services.rules.prompt_params import apply
from services.text import _

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
STAGES = {STARTING: "starting", PROCESSING: "generating", SUCCEEDED: "finished"}
TERMINAL_REDRAW_SECONDS = 1.0
FILE_REDRAW_SECONDS = 10.0  # a log file or a pipe gets a line this often while nothing changes


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python bot.py generate", description="Make images with one FLUX prediction.")
    p.add_argument("prompt")
    # The built-in models: the help is shown before the settings (and MODELS_FILE) are read.
    p.add_argument("--model", help=f"model id or short name ({built_in().names()})")
    p.add_argument("--aspect-ratio")
    p.add_argument("--resolution", help="megapixels: 0.5, 1, 2, 4 or match_input_image (FLUX.2 pro and flex)")
    p.add_argument("--width", help="with --aspect-ratio custom")
    p.add_argument("--height", help="with --aspect-ratio custom")
    p.add_argument("--output-format")
    p.add_argument("--output-quality")
    p.add_argument("--seed")
    p.add_argument("--num-outputs")
    p.add_argument("--safety-tolerance", help="1 (strict) to 5 or 6, depending on the model")
    p.add_argument(
        "--image", action="append", default=[],
        help="input image, a file path or an https URL; repeat it for several reference images (FLUX.2)",
    )  # fmt: skip
    p.add_argument("--out", default="out", help="folder for the images (default ./out)")
    return p


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)  # exits 2 itself on a usage error
    with StopSignal().installed() as stop:
        return _main(args, stop)


def _main(args: argparse.Namespace, stop: StopSignal) -> int:
    try:
        settings = load_settings(require_discord=False)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings.log_level, settings.secrets(), stream=sys.stderr, log_format=settings.log_format)
    out = Path(args.out)
    try:
        model, model_input = _build(args, settings)
        check_out_dir(out)
    except BadInput as exc:
        print(f"error: {in_cli_words(exc)}", file=sys.stderr)
        return EXIT_USAGE
    outcome = asyncio.run(_run(settings, model, model_input, stop))
    if isinstance(outcome, int):
        return outcome
    return _save(outcome, out)


def in_cli_words(exc: BadInput) -> str:
    """A refusal as the command line says it: the chat's words for giving an image (an attachment, the `image`
    option) become the flag, --image."""
    if not isinstance(exc, ImageRefusal):
        return str(exc)
    if isinstance(exc, NeedsImage):
        return f"{exc.model} edits an image: give one with --image."
    if isinstance(exc, TakesNoImage):
        return f"{exc.model} makes images from text only; leave out --image, or pick a Kontext or FLUX.2 model."
    if isinstance(exc, ShapeNeedsImage) and exc.option is not None:
        flag = "--" + exc.option.replace("_", "-")
        return f"{flag} {exc.value} takes the shape of an input image: give one with --image, or pick another {flag}."
    return str(exc)


def _save(result: Result, out: Path) -> int:
    try:
        out.mkdir(parents=True, exist_ok=True)
        for index, image in enumerate(result.images):
            path = out / f"{result.prediction.id}-{index}.{image.extension}"
            path.write_bytes(image.data)
            print(path)
    except OSError as exc:
        print(f"error: --out {out}: {exc.strerror or exc}; prediction {result.prediction.id}'s images were "
              "not all saved", file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    return EXIT_OK


def _build(args: argparse.Namespace, settings: Settings) -> tuple[str, dict[str, object]]:
    given = {
        "model": args.model,
        "aspect_ratio": args.aspect_ratio,
        "resolution": args.resolution,
        "width": args.width,
        "height": args.height,
        "output_format": args.output_format,
        "output_quality": args.output_quality,
        "num_outputs": args.num_outputs,
        "safety_tolerance": args.safety_tolerance,
        "seed": args.seed,
    }
    applied = apply(args.prompt, given, settings.catalogue)  # --ar 16:9 and the like, typed in the prompt
    for note in applied.notes:
        print(f"note: {note}", file=sys.stderr)
    options = {k: v for k, v in applied.given.items() if v is not None}
    model = str(options.pop("model", None) or settings.default_model)
    # Always send a seed, so the user can repeat a result they like.
    options.setdefault("seed", random.randint(0, MAX_SEED))
    images = [_input_image(ref, settings.max_input_image_bytes) for ref in args.image]
    return settings.catalogue.build_input(
        model, Request(applied.prompt, options, tuple(images)), allow_unknown=settings.allow_unknown_models
    )


async def _run(settings: Settings, model: str, model_input: dict[str, object], stop: StopSignal) -> Result | int:
    progress = ProgressLine(sys.stderr, model.rsplit("/", maxsplit=1)[-1], model_input.get("seed"))
    with stop.in_loop():
        async with PredictionService.open(
            settings.api(), typical_seconds=settings.catalogue.typical_seconds(), sleep=stop.retry_sleep
        ) as service:
            progress.usual = service.stats.window(model)
            try:
                async with progress.ticking():
                    result = await run_stoppable(
                        service, stop, model, model_input, on_update=progress.update, notice=progress.end,
                        create_grace=CREATE_GRACE + settings.sync_wait_seconds,  # a create with "Prefer: wait" holds
                    )  # fmt: skip
            except Interrupted as exc:
                progress.end(str(exc))
                return exc.exit_code
            except (AuthError, Rejected) as exc:
                progress.end(f"error: {exc}")
                return EXIT_USAGE
            except ServiceError as exc:
                progress.end(f"failed: {exc}")
                return EXIT_FAILED
    progress.end(f"done in {result.seconds:.1f} s ({result.prediction.id})")
    return result


def _input_image(ref: str, max_bytes: int) -> str:
    """A URL is passed on as it is (the API fetches it); a file is sent inline as a data: URI."""
    if ref.startswith("https://"):
        return ref
    if "://" in ref:
        raise BadInput(f"--image {ref}: only https URLs or local files are accepted.")
    path = Path(ref)
    if not path.is_file():
        raise BadInput(f"--image {ref}: no such file.")
    if path.stat().st_size > max_bytes:
        raise BadInput(f"--image {ref}: larger than {max_bytes // (1024 * 1024)} MiB.")
    try:
        return encode_data_uri(as_image(path.read_bytes(), f"--image {ref}"))
    except ValueError as exc:
        raise BadInput(f"{exc}.") from None


class ProgressLine:
    """One line redrawn in place on a terminal; plain lines when stderr is a file or a pipe.

    The poller reports only changes, and a model without a progress bar (the pro models, FLUX.2) reports none
    for its whole run: so the line is also redrawn while nothing changes (every second on a terminal, less often
    in a file), its elapsed time moving, with the model's usual duration as the Discord message shows it.
    """

    def __init__(self, stream: TextIO, label: str, seed: object) -> None:
        self._stream = stream
        self._label = f"{label} (seed {seed})"
        self._tty = stream.isatty()
        self._every = TERMINAL_REDRAW_SECONDS if self._tty else FILE_REDRAW_SECONDS
        self._shown: tuple[str, int | None] | None = None  # the stage and percentage last reported
        self._since = time.monotonic()  # what the elapsed time counts from
        self.usual: tuple[float, float] | None = None  # how long the model usually takes (low, high) seconds

    async def update(self, update: Update) -> None:
        self._shown = (STAGES.get(update.status, update.status), update.progress.percent)
        self._since = time.monotonic() - update.elapsed
        self._draw()

    @contextlib.asynccontextmanager
    async def ticking(self) -> AsyncIterator[None]:
        """Redraw the line every so often while the body runs."""
        ticker = asyncio.create_task(self._tick())
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            if self._shown is not None:
                self._draw()

    def _draw(self) -> None:
        assert self._shown is not None
        stage, percent = self._shown
        elapsed = time.monotonic() - self._since
        text = f"{self._label}: {stage}{f' {percent}%' if percent is not None else ''} · {elapsed:.1f} s"
        if self.usual is not None and stage == STAGES[PROCESSING] and percent is None:
            low, high = (_seconds(value) for value in self.usual)
            usual = (
                _("longer than the usual {low}–{high} s", low=low, high=high)
                if elapsed > self.usual[1]
                else _("usually {low}–{high} s", low=low, high=high)
            )
            text += f" ({usual})"
        if self._tty:
            self._stream.write("\r\x1b[2K" + text)
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def end(self, text: str) -> None:
        self._stream.write(("\r\x1b[2K" if self._tty else "") + f"{self._label}: {text}\n")
        self._stream.flush()


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 3 else f"{value:.1f}"
