"""Polling benchmark: our CometClient + wait_for (learned poll schedule) against the official `replicate`
client (a GET every 0.5 s), on the same mixed workload against the same fake CometAPI. Run by hand:

    python -m bench.polling [--n 200] [--spread 10] [--seed 1] [--port 0] [--json out.json]

The fake (fakes/cometapi.py) runs as a separate process, so its CPU is not counted against the
clients. Both clients are timed one after the other in this process. `Prefer: wait` is off for both:
this compares polling with polling. See bench/README.md for what is measured and why it is fair.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import random
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import httpx
from replicate.client import Client as ReplicateClient

from fakes.cometapi_models import MODELS, QUEUE_RANGE
from services.cometapi.service import PredictionService
from services.config import Settings
from services.secrets import Secret

KEY = "bench-key"
REPO = Path(__file__).resolve().parent.parent
OWNER = "black-forest-labs"
# Share of each model in the workload: roughly how the bot is used.
MIX: dict[str, float] = {
    f"{OWNER}/flux-schnell": 0.30,
    f"{OWNER}/flux-dev": 0.20,
    f"{OWNER}/flux-1.1-pro": 0.15,
    f"{OWNER}/flux-kontext-pro": 0.10,
    f"{OWNER}/flux-2-pro": 0.10,
    f"{OWNER}/flux-2-dev": 0.10,
    f"{OWNER}/flux-2-flex": 0.05,
}
INPUT_IMAGE = "https://example.com/bench/input.png"  # the fake checks the form of the URL, never fetches it


# -- the workload ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    index: int  # arrival order, which is also creation order
    model: str
    input: dict[str, Any]
    arrival: float  # seconds after the run starts
    queue_time: float  # what the fake will show as "starting"
    duration: float  # then "processing" for this long

    @property
    def short(self) -> str:
        return self.model.split("/", 1)[1]


def exact_counts(n: int, mix: dict[str, float]) -> dict[str, int]:
    """Split n by the shares in mix, largest remainder first, so the mix is exact rather than sampled."""
    raw = {model: n * share / sum(mix.values()) for model, share in mix.items()}
    counts = {model: int(value) for model, value in raw.items()}
    by_remainder = sorted(raw, key=lambda m: raw[m] - counts[m], reverse=True)
    for model in by_remainder[: n - sum(counts.values())]:
        counts[model] += 1
    return counts


def make_workload(n: int, spread: float, seed: int) -> list[Job]:
    """n jobs in arrival order, with durations drawn as the fake draws them at speed 1.0."""
    rng = random.Random(seed)
    models = [model for model, count in exact_counts(n, MIX).items() for _ in range(count)]
    rng.shuffle(models)
    arrivals = sorted(rng.uniform(0, spread) for _ in range(n))
    jobs = []
    for i, (model, arrival) in enumerate(zip(models, arrivals, strict=True)):
        inp: dict[str, Any] = {"prompt": f"bench job {i}: a lighthouse at dusk"}
        spec = MODELS[model]
        if spec.needs_input_image:
            inp["input_image"] = INPUT_IMAGE
        elif spec.image_field == "input_images":  # FLUX.2: none to three reference images
            inp["input_images"] = [f"{INPUT_IMAGE}?{n}" for n in range(rng.randint(0, 3))]
        queue = rng.uniform(*QUEUE_RANGE)
        duration = rng.uniform(*MODELS[model].duration)
        jobs.append(Job(i, model, inp, arrival, queue, duration))
    return jobs


# -- the fake, in its own process, driven over HTTP -----------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def fake_process(port: int, seed: int) -> Iterator[str]:
    """Start `python -m fakes.cometapi` and stop it (by its own pid) afterwards."""
    cmd = [sys.executable, "-m", "fakes.cometapi", "--port", str(port), "--key", KEY]
    cmd += ["--speed", "1.0", "--seed", str(seed)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class FakeControl:
    """The fake's keyless /_fake/ routes."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def _call(self, method: str, path: str, body: object = None) -> Any:
        async with self.session.request(method, f"{self.url}/_fake/{path}", json=body) as response:
            response.raise_for_status()
            return await response.json()

    async def wait_ready(self) -> None:
        async with asyncio.timeout(15):
            while True:
                try:
                    await self._call("GET", "config")
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
                else:
                    return

    async def prepare(self, jobs: Sequence[Job]) -> None:
        """Forget the last run, turn sync mode off, and queue each job's times in creation order."""
        await self._call("POST", "reset")
        await self._call("POST", "config", {"prefer_wait": False})
        for job in jobs:
            await self._call("POST", "outcomes", {"duration": job.duration, "queue_time": job.queue_time})

    async def predictions(self) -> dict[str, dict[str, Any]]:
        return {p["id"]: p for p in await self._call("GET", "predictions")}

    async def gets_by_prediction(self) -> Counter[str]:
        records = await self._call("GET", "requests?route=get")
        return Counter(r["path"].rsplit("/", 1)[-1] for r in records)


# -- the two clients -----------------------------------------------------------------------------------

Waiter = Callable[[], Awaitable[None]]


class Contender(Protocol):
    name: str

    async def create(self, job: Job) -> tuple[str, Waiter]:
        """Create the prediction; return its id and a coroutine function that waits until it ends."""
        ...

    def gets_sent(self) -> int:
        """GET requests the client says it sent."""
        ...


class Ours:
    """PredictionService as the bot wires it: CometClient + wait_for + DurationStats seeded from the catalogue."""

    name = "ours"

    def __init__(self, service: PredictionService) -> None:
        self.service = service

    async def create(self, job: Job) -> tuple[str, Waiter]:
        started = time.monotonic()
        prediction = await self.service.create(job.model, job.input)

        async def wait() -> None:
            await self.service.wait(prediction, job.model, started=started)

        return prediction.id, wait

    def gets_sent(self) -> int:
        return self.service.client.counts["get"]


class Official:
    """replicate 1.0.7: predictions.async_create, then Prediction.async_wait (poll every 0.5 s)."""

    name = "official"

    def __init__(self, url: str, transport: httpx.AsyncHTTPTransport) -> None:
        self.gets = 0
        hooks = {"request": [self.count_request]}
        self.client = ReplicateClient(
            api_token=KEY, base_url=f"{url}/replicate", transport=transport, event_hooks=hooks
        )

    async def count_request(self, request: httpx.Request) -> None:
        if request.method == "GET":
            self.gets += 1

    async def create(self, job: Job) -> tuple[str, Waiter]:
        prediction = await self.client.predictions.async_create(model=job.model, input=job.input)

        async def wait() -> None:
            await prediction.async_wait()
            if prediction.status != "succeeded":
                raise RuntimeError(f"{prediction.id} ended {prediction.status}: {prediction.error}")

        return str(prediction.id), wait

    def gets_sent(self) -> int:
        return self.gets


@contextlib.asynccontextmanager
async def open_ours(url: str) -> AsyncIterator[Ours]:
    settings = Settings(cometapi_key=Secret(KEY), cometapi_base_url=url)
    async with PredictionService.open(settings.api(), typical_seconds=settings.catalogue.typical_seconds()) as service:
        yield Ours(service)


@contextlib.asynccontextmanager
async def open_official(url: str) -> AsyncIterator[Official]:
    transport = httpx.AsyncHTTPTransport()  # what replicate builds by default; passed in so it can be closed
    try:
        yield Official(url, transport)
    finally:
        await transport.aclose()


# -- one run -------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    job: Job
    prediction_id: str | None = None
    seen_wall: float | None = None  # time.time() when the client's wait returned
    error: str | None = None


@dataclass
class Phase:
    name: str
    outcomes: list[Outcome]
    cpu_seconds: float
    client_gets: int


class InOrder:
    """Lets job i create only after job i-1 has, so the fake hands out the queued times in job order."""

    def __init__(self, n: int) -> None:
        self._turns = [asyncio.Event() for _ in range(n + 1)]
        self._turns[0].set()

    @contextlib.asynccontextmanager
    async def turn(self, index: int) -> AsyncIterator[None]:
        await self._turns[index].wait()
        try:
            yield
        finally:
            self._turns[index + 1].set()


async def run_job(contender: Contender, job: Job, t0: float, order: InOrder) -> Outcome:
    outcome = Outcome(job)
    await asyncio.sleep(max(0.0, t0 + job.arrival - time.monotonic()))
    try:
        async with order.turn(job.index):
            outcome.prediction_id, wait = await contender.create(job)
        await wait()
        outcome.seen_wall = time.time()
    except Exception as exc:  # a failed job is counted, not fatal
        outcome.error = f"{type(exc).__name__}: {exc}"
    return outcome


async def run_phase(contender: Contender, jobs: Sequence[Job]) -> Phase:
    gc.collect()
    order = InOrder(len(jobs))
    cpu0 = time.process_time()
    t0 = time.monotonic()
    outcomes = await asyncio.gather(*(run_job(contender, job, t0, order) for job in jobs))
    cpu = time.process_time() - cpu0
    return Phase(contender.name, list(outcomes), cpu, contender.gets_sent())


# -- figures -------------------------------------------------------------------------------------------


@dataclass
class Figures:
    n: int
    done: int
    gets_per_prediction: float  # from the fake's per-prediction counters
    delay_mean_ms: float
    delay_p95_ms: float
    cpu_ms_per_prediction: float | None = None  # whole run only
    client_gets_per_prediction: float | None = None  # whole run only
    fake_log_gets_per_prediction: float | None = None  # whole run only: from the fake's request log
    gets_by_model: dict[str, float] = field(default_factory=dict)
    delay_by_model_ms: dict[str, float] = field(default_factory=dict)


def p95(values: Sequence[float]) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def by_model(values: dict[str, list[float]], scale: float = 1.0) -> dict[str, float]:
    """Means per model, keyed by short name, in MIX order."""
    return {model.split("/", 1)[1]: statistics.fmean(values[model]) * scale for model in MIX if values[model]}


def figures_for(outcomes: Sequence[Outcome], fake: dict[str, dict[str, Any]]) -> Figures:
    gets: dict[str, list[float]] = defaultdict(list)
    delays: dict[str, list[float]] = defaultdict(list)
    for o in outcomes:
        p = fake.get(o.prediction_id or "")
        if p is None:
            continue
        gets[o.job.model].append(p["gets"])
        if o.seen_wall is not None and p["done_wall"] is not None:
            delays[o.job.model].append(o.seen_wall - p["done_wall"])
    all_delays = [d for model in delays for d in delays[model]]
    return Figures(
        n=len(outcomes),
        done=len(all_delays),
        gets_per_prediction=sum(sum(g) for g in gets.values()) / len(outcomes),
        delay_mean_ms=statistics.fmean(all_delays) * 1000 if all_delays else float("nan"),
        delay_p95_ms=p95(all_delays) * 1000,
        gets_by_model=by_model(gets),
        delay_by_model_ms=by_model(delays, 1000),
    )


def check_draws(outcomes: Sequence[Outcome], fake: dict[str, dict[str, Any]]) -> int:
    """How many predictions ended exactly queue + duration after creation, as the job asked."""
    matched = 0
    for o in outcomes:
        p = fake.get(o.prediction_id or "")
        if p and p["done_wall"] is not None:
            matched += abs(p["done_wall"] - p["created_wall"] - o.job.queue_time - o.job.duration) < 1e-3
    return matched


@dataclass
class Report:
    whole: Figures
    second_half: Figures
    draws_matched: int


async def measure(ctl: FakeControl, contender: Contender, jobs: Sequence[Job]) -> Report:
    await ctl.prepare(jobs)
    phase = await run_phase(contender, jobs)
    fake = await ctl.predictions()
    log_gets = await ctl.gets_by_prediction()
    n = len(jobs)
    whole = figures_for(phase.outcomes, fake)
    whole.cpu_ms_per_prediction = phase.cpu_seconds / n * 1000
    whole.client_gets_per_prediction = phase.client_gets / n
    whole.fake_log_gets_per_prediction = sum(log_gets[o.prediction_id or ""] for o in phase.outcomes) / n
    for o in phase.outcomes:
        if o.error:
            print(f"  {contender.name}: job {o.job.index} ({o.job.short}) failed: {o.error}", file=sys.stderr)
    second = figures_for(phase.outcomes[n // 2 :], fake)
    return Report(whole, second, check_draws(phase.outcomes, fake))


async def benchmark(args: argparse.Namespace, url: str, jobs: Sequence[Job]) -> dict[str, Report]:
    reports: dict[str, Report] = {}
    openers: list[Callable[[str], contextlib.AbstractAsyncContextManager[Contender]]] = [open_ours, open_official]
    if args.official_first:
        openers.reverse()
    async with aiohttp.ClientSession() as session:
        ctl = FakeControl(session, url)
        await ctl.wait_ready()
        for opener in openers:
            async with opener(url) as contender:
                reports[contender.name] = await measure(ctl, contender, jobs)
    return reports


# -- output --------------------------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}"


def row(label: str, a: float | None, b: float | None, fmt: str = "{:.2f}") -> str:
    def cell(v: float | None) -> str:
        return "-" if v is None else fmt.format(v)

    return f"{label:<38}{cell(a):>10}{cell(b):>10}{ratio(a, b):>15}"


def table(ours: Figures, official: Figures, *, whole: bool) -> list[str]:
    lines = [f"{'':<38}{'ours':>10}{'official':>10}{'ours/official':>15}"]
    lines.append(f"{'predictions done':<38}{f'{ours.done}/{ours.n}':>10}{f'{official.done}/{official.n}':>10}")
    lines.append(row("GETs / prediction (fake counters)", ours.gets_per_prediction, official.gets_per_prediction))
    if whole:
        lines.append(row("GETs / prediction (fake log)", ours.fake_log_gets_per_prediction,
                         official.fake_log_gets_per_prediction))  # fmt: skip
        lines.append(row("GETs / prediction (client count)", ours.client_gets_per_prediction,
                         official.client_gets_per_prediction))  # fmt: skip
    lines.append(row("detection delay mean (ms)", ours.delay_mean_ms, official.delay_mean_ms, "{:.0f}"))
    lines.append(row("detection delay p95 (ms)", ours.delay_p95_ms, official.delay_p95_ms, "{:.0f}"))
    if whole:
        lines.append(row("client CPU / prediction (ms)", ours.cpu_ms_per_prediction,
                         official.cpu_ms_per_prediction))  # fmt: skip
    for model in ours.gets_by_model:
        lines.append(row(f"  GETs / prediction, {model}", ours.gets_by_model[model], official.gets_by_model.get(model)))
    for model in ours.delay_by_model_ms:
        ours_ms, official_ms = ours.delay_by_model_ms[model], official.delay_by_model_ms.get(model)
        lines.append(row(f"  delay mean (ms), {model}", ours_ms, official_ms, "{:.0f}"))
    return lines


def worse_models(ours: Figures, official: Figures) -> str:
    """Models whose mean detection delay is worse with ours: the overall mean can hide them."""
    worse = [
        f"{model} ({ours_ms:.0f} vs {official.delay_by_model_ms[model]:.0f} ms)"
        for model, ours_ms in ours.delay_by_model_ms.items()
        if ours_ms > official.delay_by_model_ms.get(model, float("inf"))
    ]
    return ", ".join(worse) or "none"


def verdict(ours: Figures, official: Figures) -> str:
    fewer = ours.gets_per_prediction < official.gets_per_prediction
    mean_ok = ours.delay_mean_ms <= official.delay_mean_ms
    p95_ok = ours.delay_p95_ms <= official.delay_p95_ms
    met = fewer and mean_ok and p95_ok and ours.done == ours.n
    parts = [
        f"fewer GETs: {'yes' if fewer else 'NO'}",
        f"mean delay no worse: {'yes' if mean_ok else 'NO'}",
        f"p95 delay no worse: {'yes' if p95_ok else 'NO'}",
    ]
    return f"{'MET' if met else 'NOT MET'} ({'; '.join(parts)})"


def render(args: argparse.Namespace, jobs: Sequence[Job], reports: dict[str, Report]) -> str:
    ours, official = reports["ours"], reports["official"]
    mix = Counter(job.short for job in jobs)
    n = len(jobs)
    order = "official, then ours" if args.official_first else "ours, then official"
    lines = [
        f"Polling benchmark: {n} predictions over {args.spread:g} s (seed {args.seed}); "
        + ", ".join(f"{count} {model}" for model, count in mix.most_common()),
        f"Fake CometAPI in its own process (speed 1.0, Prefer: wait off); clients run {order}.",
        f"Per-prediction times queued in creation order; draws honoured: ours {ours.draws_matched}/{n}, "
        f"official {official.draws_matched}/{n}.",
        "Detection delay = client's wait returned (wall) - fake's done_wall. CPU = this process only.",
        "",
        *table(ours.whole, official.whole, whole=True),
        "",
        f"Second half only (jobs {n // 2}-{n - 1}; ours has learned durations by then, same jobs for both):",
        *table(ours.second_half, official.second_half, whole=False),
        "",
        "Goal: fewer GETs per prediction AND detection delay (mean and p95) no worse than official",
        f"  whole run:   {verdict(ours.whole, official.whole)}",
        f"  second half: {verdict(ours.second_half, official.second_half)}",
        f"  models with a worse mean delay: whole run {worse_models(ours.whole, official.whole)}; "
        f"second half {worse_models(ours.second_half, official.second_half)}",
    ]
    return "\n".join(lines)


def to_json(args: argparse.Namespace, reports: dict[str, Report]) -> dict[str, Any]:
    return {
        "n": args.n,
        "spread": args.spread,
        "seed": args.seed,
        "order": "official_first" if args.official_first else "ours_first",
        **{name: asdict(report) for name, report in reports.items()},
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.polling", description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200, help="predictions per client (default 200)")
    parser.add_argument("--spread", type=float, default=10.0, help="seconds over which they start (default 10)")
    parser.add_argument("--seed", type=int, default=1, help="workload and fake seed (default 1)")
    parser.add_argument("--port", type=int, default=0, help="port for the fake (default: a free one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    parser.add_argument("--official-first", action="store_true", help="run the official client first")
    args = parser.parse_args(argv)
    if args.n < 2:
        parser.error("--n must be at least 2")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    jobs = make_workload(args.n, args.spread, args.seed)
    port = args.port or free_port()
    with fake_process(port, args.seed) as url:
        reports = asyncio.run(benchmark(args, url, jobs))
    print(render(args, jobs, reports))
    if args.json is not None:
        args.json.write_text(json.dumps(to_json(args, reports), indent=2) + "\n")
        print(f"Figures written to {args.json}")


if __name__ == "__main__":
    main()
