"""Load benchmark: the real bot (`python bot.py`, its own process) under a burst of /imagine commands from
many users in many servers, against the fake Discord and the fake CometAPI (each in its own process too).
Run by hand:

    python -m bench.load [--jobs 500] [--spread 10] [--users 200] [--guilds 50] [--seed 1] [--json out.json]
                         [--profile out/profile.txt]

This process only drives (fires the slash commands through the fake Discord's control API) and measures
(from the two fakes' records, the bot's /proc entries and the bot's log). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import os
import random
import re
import signal
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from fakes.cometapi_models import MODELS

REPO = Path(__file__).resolve().parent.parent
KEY = "bench-comet-key"
TOKEN = "bench-discord-token"
OWNER = "black-forest-labs"
MIX: dict[str, float] = {  # share of each model: roughly how the bot is used (as in bench/polling.py)
    f"{OWNER}/flux-schnell": 0.40,
    f"{OWNER}/flux-dev": 0.25,
    f"{OWNER}/flux-1.1-pro": 0.20,
    f"{OWNER}/flux-kontext-pro": 0.15,
}
FILE_KB = "100-1500"  # size of each output image, drawn per prediction
EDIT_WINDOW = 1.5  # seconds: at most one progress edit per job in any window this long
TERMINAL = ("succeeded", "failed", "canceled")
TARGETS = {"ack_p99_ms": 250.0, "delivery_p50_ms": 400.0, "edits_per_window": 1, "peak_rss_mb": 250.0}

SUBJECTS = (
    "a red fox in the snow", "a lighthouse at dusk", "an astronaut riding a horse", "a bowl of ramen",
    "a cyberpunk street market in the rain", "a cat wearing a tiny crown", "an old library full of plants",
    "a dragon made of glass", "a sailing ship in a storm", "a cozy cabin in a pine forest",
    "a robot watering flowers", "a portrait of an elderly fisherman", "a city skyline made of books",
    "a hummingbird drinking from a neon flower", "a desert caravan under two moons", "a steam locomotive",
)  # fmt: skip
STYLES = (
    "", "watercolor", "oil painting, thick brush strokes", "35mm photo, golden hour", "isometric 3D render",
    "studio ghibli style", "charcoal sketch", "low-poly", "ultra detailed, 8k, dramatic lighting", "pixel art",
)  # fmt: skip
RATIOS = ("1:1", "16:9", "3:2", "2:3", "9:16", "4:3")
FORMATS = {"flux-schnell": ("webp", "jpg", "png"), "flux-dev": ("webp", "jpg", "png"),
           "flux-1.1-pro": ("webp", "jpg", "png"), "flux-kontext-pro": ("jpg", "png")}  # fmt: skip


# -- the workload ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    index: int
    model: str
    prompt: str  # unique: ends with "#index", which is how predictions are matched to jobs
    options: dict[str, Any]  # the /imagine options besides prompt and image
    user_id: str
    guild_id: str
    channel_id: str
    arrival: float  # seconds after the burst starts

    @property
    def short(self) -> str:
        return self.model.split("/", 1)[1]

    @property
    def needs_image(self) -> bool:
        return MODELS[self.model].needs_input_image


def exact_counts(n: int, mix: dict[str, float]) -> dict[str, int]:
    """Split n by the shares in mix, largest remainder first, so the mix is exact rather than sampled."""
    raw = {model: n * share / sum(mix.values()) for model, share in mix.items()}
    counts = {model: int(value) for model, value in raw.items()}
    for model in sorted(raw, key=lambda m: raw[m] - counts[m], reverse=True)[: n - sum(counts.values())]:
        counts[model] += 1
    return counts


def make_workload(args: argparse.Namespace, world: dict[str, Any]) -> list[Job]:
    rng = random.Random(args.seed)
    mix = dict(MIX) if not args.no_kontext else {m: s for m, s in MIX.items() if "kontext" not in m}
    models = [model for model, count in exact_counts(args.jobs, mix).items() for _ in range(count)]
    rng.shuffle(models)
    arrivals = sorted(rng.uniform(0, args.spread) for _ in range(args.jobs))
    channels = {g["id"]: g["channel_ids"] for g in world["guilds"]}
    jobs = []
    for i, (model, arrival) in enumerate(zip(models, arrivals, strict=True)):
        user = rng.choice(world["users"])
        guild = rng.choice(user["guild_ids"])
        style = rng.choice(STYLES)
        prompt = f"{rng.choice(SUBJECTS)}{', ' + style if style else ''} #{i}"
        short = model.split("/", 1)[1]
        options: dict[str, Any] = {"model": model, "aspect_ratio": rng.choice(RATIOS)}
        if rng.random() < 0.5:
            options["output_format"] = rng.choice(FORMATS[short])
        if MODELS[model].max_outputs > 1:
            options["num_outputs"] = rng.randint(1, 4)
        jobs.append(Job(i, model, prompt, options, user["id"], guild, rng.choice(channels[guild]), arrival))
    return jobs


def small_png(seed: int, side: int = 96) -> bytes:
    """A real (noisy) PNG of a few tens of KB: the image a Kontext job edits."""
    rng = random.Random(seed)
    rows = b"".join(b"\x00" + rng.randbytes(side * 3) for _ in range(side))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


# -- the three processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def process(cmd: list[str], log: Path, *, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run `cmd` from the repository root, output to `log`; on exit stop it (SIGTERM to its own pid)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> bool:
    """SIGTERM, then SIGKILL after `timeout`; whether it exited by itself."""
    if proc.poll() is not None:
        return True
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return False
    return True


@dataclass
class ProcUsage:
    cpu_seconds: float  # user + system
    system_seconds: float  # of it, in the kernel (socket calls, page faults)
    rss_mb: float
    hwm_mb: float  # peak resident set size since start (VmHWM)


def proc_usage(pid: int) -> ProcUsage:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "; utime, stime are fields 14, 15
    ticks = os.sysconf("SC_CLK_TCK")
    user, system = int(fields[11]) / ticks, int(fields[12]) / ticks
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )  # fmt: skip

    def mb(key: str) -> float:
        return int(status[key].split()[0]) / 1024

    return ProcUsage(user + system, system, mb("VmRSS"), mb("VmHWM"))


class Http:
    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def call(self, method: str, path: str, body: object = None) -> Any:
        async with self.session.request(method, f"{self.url}{path}", json=body) as response:
            data = await response.json()
            if response.status >= 400:
                raise RuntimeError(f"{method} {path} -> {response.status}: {data}")
            return data

    async def wait_ready(self, path: str) -> None:
        async with asyncio.timeout(20):
            while True:
                try:
                    await self.call("GET", path)
                except (aiohttp.ClientError, RuntimeError):
                    await asyncio.sleep(0.1)
                else:
                    return


def bot_env(args: argparse.Namespace, tmp: Path, comet: str, discord_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISCORD_", "COMETAPI_", "DATABASE_"))}
    env.update(
        {
            "DISCORD_TOKEN": TOKEN,
            "COMETAPI_KEY": KEY,
            "COMETAPI_BASE_URL": comet,
            "DISCORD_API_BASE_URL": f"http://127.0.0.1:{discord_port}/api/v10",
            "DISCORD_GATEWAY_URL": f"ws://127.0.0.1:{discord_port}/gateway",
            "DATABASE_URL": f"sqlite:///{tmp / 'bot.db'}",
            "USER_COOLDOWN": "0",
            "MAX_JOBS_PER_USER": str(args.max_jobs_per_user),
            "MAX_CONCURRENT_PREDICTIONS": str(args.max_concurrent),
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(item.split("=", 1) for item in args.bot_env)
    return env


def bot_settings_used(args: argparse.Namespace) -> str:
    extra = "".join(f" {item}" for item in args.bot_env)
    return (
        f"USER_COOLDOWN=0 MAX_JOBS_PER_USER={args.max_jobs_per_user} "
        f"MAX_CONCURRENT_PREDICTIONS={args.max_concurrent}{extra} (others default; a SQLite file)"
    )


# -- one run -------------------------------------------------------------------------------------------


@dataclass
class Fired:
    job: Job
    interaction_id: str | None = None
    error: str | None = None


@dataclass
class Run:
    jobs: list[Job]
    fired: list[Fired]
    t0_wall: float  # burst start
    end_wall: float  # all jobs ended (or the wait gave up)
    usage_before: ProcUsage
    usage_after: ProcUsage
    fake_discord_cpu: float
    fake_comet_cpu: float
    interactions: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    discord_stats: dict[str, Any]
    predictions: list[dict[str, Any]]
    comet_requests: dict[str, int]
    comet_times: dict[str, dict[str, list[float]]]  # prediction id -> route (get, file) -> arrival walls
    create_prompts: list[str]
    db_statuses: dict[str, int]
    rss_samples: list[tuple[float, float]]  # (seconds after the burst began, MB)
    bot_log: str
    bot_exit: str


async def fire(discord: Http, job: Job, t0: float, image: bytes) -> Fired:
    await asyncio.sleep(max(0.0, t0 + job.arrival - time.monotonic()))
    body: dict[str, Any] = {
        "name": "imagine",
        "options": {"prompt": job.prompt, **job.options},
        "guild_id": job.guild_id,
        "channel_id": job.channel_id,
        "user_id": job.user_id,
    }
    if job.needs_image:
        body["attachments"] = {
            "image": {"filename": f"input-{job.index}.png", "base64": base64.b64encode(image).decode()}
        }
    try:
        answer = await discord.call("POST", "/_fake/slash", body)
    except (aiohttp.ClientError, RuntimeError) as exc:
        return Fired(job, error=str(exc))
    return Fired(job, answer["interaction_id"])


def db_statuses(path: Path) -> Counter[str]:
    """Job statuses in the bot's database (read-only; SQLite WAL lets this reader run beside the bot)."""
    if not path.exists():
        return Counter()
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        try:
            return Counter(dict(db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()))
        except sqlite3.OperationalError:  # not migrated yet
            return Counter()


async def wait_for_jobs(db: Path, expected: int, *, settle: float, limit: float) -> Counter[str]:
    """Until every fired job has ended in the database, or nothing changed for `settle` seconds."""
    last: Counter[str] = Counter()
    changed = time.monotonic()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        statuses = await asyncio.to_thread(db_statuses, db)
        if sum(statuses[s] for s in TERMINAL) >= expected:
            return statuses
        if statuses != last:
            last, changed = statuses, time.monotonic()
        elif time.monotonic() - changed > settle:
            break
    return last


async def sample_rss(pid: int, t0: float, out: list[tuple[float, float]]) -> None:
    """The bot's resident set size every 0.25 s, to see when the peak happens."""
    while True:
        out.append((time.monotonic() - t0, proc_usage(pid).rss_mb))
        await asyncio.sleep(0.25)


def request_times(requests: list[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """When the fake CometAPI received each GET and each file download, by prediction id."""
    times: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in requests:
        if r["route"] == "get":
            times[r["path"].rsplit("/", 1)[-1]]["get"].append(r["wall"])
        elif r["route"] == "file":
            times[r["path"].split("/")[2]]["file"].append(r["wall"])
    return {pid: dict(routes) for pid, routes in times.items()}


def read_log(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


async def wait_bot_ready(discord: Http, log: Path, bot: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = await discord.call("GET", "/_fake/state")
        text = await asyncio.to_thread(read_log, log)
        if state["live_sessions"] and "imagine" in state["commands"] and "Logged in as" in text:
            return
        if bot.poll() is not None:
            raise RuntimeError(f"the bot exited during start-up; its log:\n{text[-3000:]}")
        await asyncio.sleep(0.2)
    raise RuntimeError("the bot did not become ready within 60 s")


@contextlib.contextmanager
def profiler(args: argparse.Namespace, pid: int) -> Iterator[None]:
    """py-spy, attached to the bot for the burst and the wait after it (`--profile PATH`)."""
    if args.profile is None:
        yield
        return
    fmt = "speedscope" if args.profile.suffix == ".json" else "flamegraph" if args.profile.suffix == ".svg" else "raw"
    # --nonblocking: sampled without pausing the bot, which under a burst made it miss interactions.
    # --gil: only samples where Python runs, so time spent waiting in epoll is not counted as work.
    cmd = ["py-spy", "record", "--nonblocking", "--gil", "--pid", str(pid), "--rate", "200", "--format", fmt]
    cmd += ["-o", str(args.profile)]
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)  # its errors (e.g. no ptrace permission) go to stderr
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


async def drive(
    args: argparse.Namespace, tmp: Path, comet_url: str, discord_port: int, fakes: dict[str, subprocess.Popen[bytes]]
) -> Run:
    discord_url = f"http://127.0.0.1:{discord_port}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        comet, discord = Http(session, comet_url), Http(session, discord_url)
        await comet.wait_ready("/_fake/config")
        await discord.wait_ready("/_fake/state")
        world = await discord.call(
            "POST", "/_fake/world", {"guilds": args.guilds, "channels": args.channels, "users": args.users}
        )
        jobs = make_workload(args, world)
        rng = random.Random(args.seed + 1)
        await comet.call("POST", "/_fake/config", {"prefer_wait": False})
        for _ in jobs:  # file sizes, handed out in creation order (durations: the fake's own per-model draws)
            await comet.call("POST", "/_fake/outcomes", {"file_size": rng.randint(*args.image_bytes)})

        if args.edit_delay_ms:  # every message edit (interaction webhook) takes this long, like a real round trip
            fault = {"method": "*", "path": "^/webhooks/", "status": None, "times": None}
            await discord.call("POST", "/_fake/inject", fault | {"delay": args.edit_delay_ms / 1000})
        if args.inject_429:  # the next N polls and N message edits are answered 429 (checks the counters)
            await comet.call("POST", "/_fake/inject", {"route": "get", "status": 429, "headers": {"Retry-After": "1"},
                                                       "times": args.inject_429})  # fmt: skip
            await discord.call("POST", "/_fake/inject", {"method": "PATCH", "path": "^/webhooks/", "status": 429,
                                                         "retry_after": 0.5, "times": args.inject_429})  # fmt: skip
        log = tmp / "bot.log"
        env = bot_env(args, tmp, comet_url, discord_port)
        with process([sys.executable, "bot.py"], log, env=env) as bot:
            bot_pid = bot.pid
            await wait_bot_ready(discord, log, bot)
            await asyncio.sleep(1.0)  # let start-up work (command sync, guild creates) settle
            before = proc_usage(bot_pid)
            fake_cpu0 = {name: proc_usage(fake.pid).cpu_seconds for name, fake in fakes.items()}
            image = small_png(args.seed)
            with profiler(args, bot_pid):
                t0, t0_wall = time.monotonic() + 0.2, time.time() + 0.2
                rss: list[tuple[float, float]] = []
                sampler = asyncio.create_task(sample_rss(bot_pid, t0, rss))
                fired = list(await asyncio.gather(*(fire(discord, job, t0, image) for job in jobs)))
                sent = sum(f.interaction_id is not None for f in fired)
                statuses = await wait_for_jobs(tmp / "bot.db", sent, settle=args.settle, limit=args.limit)
                end_wall = time.time()
                sampler.cancel()
            await asyncio.sleep(0.5)  # a last edit in flight lands
            after = proc_usage(bot_pid)
            for name, fake in fakes.items():
                if fake.poll() is not None:
                    raise RuntimeError(f"the fake {name} exited during the run (status {fake.returncode})")
            fake_cpu = {name: proc_usage(fake.pid).cpu_seconds - fake_cpu0[name] for name, fake in fakes.items()}
            interactions = await discord.call("GET", "/_fake/interactions")
            messages = await discord.call("GET", "/_fake/messages?history=1")
            stats = await discord.call("GET", f"/_fake/stats?since_wall={t0_wall - 0.1}")
            predictions = await comet.call("GET", "/_fake/predictions")
            requests = await comet.call("GET", "/_fake/requests")
            exited = await asyncio.to_thread(stop, bot, 30.0)
        return Run(
            jobs=jobs,
            fired=fired,
            t0_wall=t0_wall,
            end_wall=end_wall,
            usage_before=before,
            usage_after=after,
            fake_discord_cpu=fake_cpu["discord"],
            fake_comet_cpu=fake_cpu["comet"],
            interactions=interactions,
            messages=messages,
            discord_stats=stats,
            predictions=predictions,
            comet_requests=dict(Counter(r["route"] for r in requests if r["wall"] >= t0_wall - 0.1)),
            comet_times=request_times(requests),
            create_prompts=[
                str((r.get("json") or {}).get("input", {}).get("prompt")) for r in requests if r["route"] == "create"
            ],
            db_statuses=dict(statuses),
            rss_samples=rss,
            bot_log=log.read_text(errors="replace"),
            bot_exit="exited" if exited else "did not exit within 30 s of SIGTERM",
        )


@dataclass
class Fakes:
    """The two fakes, each its own process, and the folder the run works in."""

    tmp: Path
    comet_url: str
    discord_port: int
    comet: Any
    discord: Any


@contextlib.contextmanager
def fakes_running(args: argparse.Namespace, prefix: str) -> Iterator[Fakes]:
    """Start the fake CometAPI and the fake Discord in `args.workdir` (emptied of an old database) or a temporary
    folder; stop them afterwards."""
    with contextlib.ExitStack() as stack:
        if args.workdir is not None:
            args.workdir.mkdir(parents=True, exist_ok=True)
            for old in ("bot.db", "bot.db-wal", "bot.db-shm"):
                (args.workdir / old).unlink(missing_ok=True)
            tmp = args.workdir
        else:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=prefix)))
        comet_port, discord_port = free_port(), free_port()
        comet_cmd = [sys.executable, "-m", "fakes.cometapi", "--port", str(comet_port), "--key", KEY]
        comet_cmd += ["--speed", "1.0", "--seed", str(args.seed)]
        discord_cmd = [sys.executable, "-m", "fakes.discord", "--port", str(discord_port), "--token", TOKEN]
        discord_cmd += ["--no-body-checks"]  # the suite checks the bodies; here the fake must keep up with a burst
        with (
            process(comet_cmd, tmp / "comet.log") as comet,
            process(discord_cmd, tmp / "discord.log") as discord,
        ):
            yield Fakes(tmp, f"http://127.0.0.1:{comet_port}", discord_port, comet, discord)


def run(args: argparse.Namespace) -> Run:
    with fakes_running(args, "bench-load-") as up:
        try:
            fakes = {"comet": up.comet, "discord": up.discord}
            return asyncio.run(drive(args, up.tmp, up.comet_url, up.discord_port, fakes))
        except BaseException:
            for name in ("bot.log", "discord.log", "comet.log"):
                print(f"--- {name} (last lines) ---\n{read_log(up.tmp / name)[-3000:]}", file=sys.stderr)
            raise


# -- figures -------------------------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100
    low = int(k)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def max_in_window(times: Sequence[float], window: float) -> int:
    """The most of `times` inside any half-open interval [t, t + window)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


@dataclass
class Figures:
    jobs: int
    fired: int
    acknowledged: int
    ack_p50_ms: float
    ack_p99_ms: float
    ack_max_ms: float
    answered_with_card: int
    answered_thinking: int
    delivered: int
    failed: int
    lost: int
    delivery_p50_ms: float
    delivery_p99_ms: float
    delivery_max_ms: float
    creates: int
    duplicate_creates: int  # creates beyond one per job, plus prompts created more than once
    predictions: int
    gets_per_prediction: float
    comet_requests_by_route: dict[str, int]
    comet_429: int  # from the bot's log: "rate limiting" retries
    discord_calls_per_job: float
    discord_calls_by_route: dict[str, float]  # per job
    discord_429: int
    edits_per_job_mean: float
    edits_per_job_by_shown: dict[str, float]  # what each edit showed: the result, "Generating", "Starting"...
    progress_edits_max_in_window: int
    all_edits_max_in_window: int
    jobs_over_one_progress_edit_per_window: int
    min_progress_edit_gap_ms: float
    cpu_seconds: float
    cpu_ms_per_job: float
    cpu_system_ms_per_job: float
    requests_per_job: float  # the bot's HTTP requests: to CometAPI (creates, polls, files, cancels) and to Discord
    cpu_ms_per_request: float  # less noisy than per job: a busier machine makes jobs end later, with more edits
    rss_before_mb: float
    peak_rss_mb: float
    rss_peak_at_s: float  # when the sampled RSS was highest, seconds after the burst began
    rss_end_mb: float
    longest_stall_ms: float | None
    stalls_over_500ms: int
    fake_discord_cpu_seconds: float
    fake_comet_cpu_seconds: float
    db_statuses: dict[str, int]
    delivery_by_model_ms: dict[str, float] = field(default_factory=dict)  # p50 per model
    delivery_stages_ms: dict[str, tuple[float, float]] = field(default_factory=dict)  # p50, p99 per stage
    problems: list[str] = field(default_factory=list)


STALL = re.compile(r"Event loop: longest stall ([\d.]+) ms")
# The stage line of a progress card (its last line), by the words of the English one.
STAGE_WORDS = (("in line", "place in line"), ("starting", "starting"), ("generating", "generating"))


def shown_by(edit: dict[str, Any], *, result: bool) -> str:
    """What one edit of a job's message showed."""
    if result:
        return "result"
    stage = str(edit.get("text", "")).rsplit("\n", 1)[-1].lower()
    return next((name for words, name in STAGE_WORDS if words in stage), "other")


def figures(run: Run) -> Figures:
    by_interaction = {i["id"]: i for i in run.interactions}
    messages = {m["id"]: m for m in run.messages}
    predictions: dict[str, list[dict[str, Any]]] = {}
    for p in run.predictions:
        predictions.setdefault(p["prompt"], []).append(p)
    problems: list[str] = []

    acks: list[float] = []
    answered_with: Counter[int | None] = Counter()  # 4: the job's first line, 5: "thinking…"
    delays: dict[str, list[float]] = defaultdict(list)
    stages: dict[str, list[float]] = defaultdict(list)
    progress_windows, all_windows, gaps, edit_counts = [], [], [], []
    shown: Counter[str] = Counter()
    delivered = failed = lost = over = 0
    for f in run.fired:
        if f.interaction_id is None:
            problems.append(f"job {f.job.index} was not fired: {f.error}")
            continue
        inter = by_interaction[f.interaction_id]
        if inter["response_delay"] is not None:
            acks.append(inter["response_delay"])
        answered_with[inter["response_type"]] += 1
        message = messages.get(inter["original_message_id"] or "")
        history = message["history"] if message else []
        final = next((i for i, e in enumerate(history) if e["new_attachments"]), None)
        if final is None:
            if history and history[-1]["content"].split("\n")[-1][:1] in ("⚠", "🛑"):
                failed += 1
                problems.append(f"job {f.job.index} ({f.job.short}) failed: {history[-1]['content'][:160]!r}")
            else:
                lost += 1
                last = history[-1]["content"][:120] if history else "(no edit)"
                problems.append(f"job {f.job.index} ({f.job.short}) lost; last edit {last!r}")
        else:
            delivered += 1
            preds = predictions.get(f.job.prompt, [])
            done = [p["done_wall"] for p in preds if p["done_wall"] is not None]
            if done:
                delays[f.job.short].append(history[final]["wall"] - max(done))
            if len(preds) == 1 and preds[0]["done_wall"] is not None:
                times = run.comet_times.get(preds[0]["id"], {})
                seen = [t for t in times.get("get", []) if t >= preds[0]["done_wall"]]
                files = times.get("file", [])
                if seen and files:
                    stages["poll"].append(min(seen) - preds[0]["done_wall"])
                    stages["seen_to_download"].append(min(files) - min(seen))
                    stages["download_to_edit"].append(history[final]["wall"] - min(files))
        progress = [e["wall"] for e in history[: final if final is not None else len(history)]]
        edit_counts.append(len(history))
        shown.update(shown_by(edit, result=i == final) for i, edit in enumerate(history))
        worst = max_in_window(progress, EDIT_WINDOW)
        progress_windows.append(worst)
        over += worst > 1
        all_windows.append(max_in_window([e["wall"] for e in history], EDIT_WINDOW))
        gaps += [b - a for a, b in itertools.pairwise(progress)]

    creates = Counter(run.create_prompts)
    job_prompts = {f.job.prompt for f in run.fired if f.interaction_id}
    duplicates = max(0, len(run.create_prompts) - len(job_prompts)) + sum(
        n - 1 for p, n in creates.items() if n > 1 and p in job_prompts
    )
    unknown = [p for p in creates if p not in job_prompts]
    if unknown:
        problems.append(f"{len(unknown)} create(s) for prompts no job had")

    stats = run.discord_stats
    per_job = [v["requests"] for k, v in stats["per_interaction"].items() if k in by_interaction]
    n = max(1, sum(f.interaction_id is not None for f in run.fired))
    stall = STALL.search(run.bot_log)
    all_delays = [d for values in delays.values() for d in values]
    gets = sum(p["gets"] for p in run.predictions)
    if stats["internal_errors"]:
        problems.append(f"fake Discord internal errors: {stats['internal_errors'][:3]}")
    if stats["spec_violations"]:
        problems.append(f"bodies Discord would refuse: {stats['spec_violations'][:3]}")
    if run.bot_exit != "exited":
        problems.append(f"bot {run.bot_exit}")
    for line in run.bot_log.splitlines():
        if " ERROR " in line or "Traceback" in line:
            problems.append(f"bot log: {line[:200]}")
    requests = sum(run.comet_requests.values()) + stats["requests"]
    return Figures(
        jobs=len(run.jobs),
        fired=n,
        acknowledged=len(acks),
        ack_p50_ms=pct(acks, 50) * 1000,
        ack_p99_ms=pct(acks, 99) * 1000,
        ack_max_ms=max(acks, default=float("nan")) * 1000,
        answered_with_card=answered_with[4],
        answered_thinking=answered_with[5],
        delivered=delivered,
        failed=failed,
        lost=lost,
        delivery_p50_ms=pct(all_delays, 50) * 1000,
        delivery_p99_ms=pct(all_delays, 99) * 1000,
        delivery_max_ms=max(all_delays, default=float("nan")) * 1000,
        creates=len(run.create_prompts),
        duplicate_creates=duplicates,
        predictions=len(run.predictions),
        gets_per_prediction=gets / max(1, len(run.predictions)),
        comet_requests_by_route=dict(run.comet_requests),
        comet_429=sum("rate limiting" in line for line in run.bot_log.splitlines()),
        discord_calls_per_job=stats["requests"] / n,
        discord_calls_by_route={route: count / n for route, count in stats["by_route"].items()},
        discord_429=stats["rate_limited"],
        edits_per_job_mean=statistics.fmean(edit_counts) if edit_counts else float("nan"),
        edits_per_job_by_shown={what: count / n for what, count in shown.most_common()},
        progress_edits_max_in_window=max(progress_windows, default=0),
        all_edits_max_in_window=max(all_windows, default=0),
        jobs_over_one_progress_edit_per_window=over,
        min_progress_edit_gap_ms=min(gaps, default=float("nan")) * 1000,
        cpu_seconds=run.usage_after.cpu_seconds - run.usage_before.cpu_seconds,
        cpu_ms_per_job=(run.usage_after.cpu_seconds - run.usage_before.cpu_seconds) / n * 1000,
        cpu_system_ms_per_job=(run.usage_after.system_seconds - run.usage_before.system_seconds) / n * 1000,
        requests_per_job=requests / n,
        cpu_ms_per_request=(run.usage_after.cpu_seconds - run.usage_before.cpu_seconds) / max(1, requests) * 1000,
        rss_before_mb=run.usage_before.rss_mb,
        peak_rss_mb=run.usage_after.hwm_mb,
        rss_peak_at_s=max(run.rss_samples, key=lambda s: s[1], default=(float("nan"), 0.0))[0],
        rss_end_mb=run.usage_after.rss_mb,
        longest_stall_ms=float(stall[1]) if stall else None,
        stalls_over_500ms=sum("Event loop stalled" in line for line in run.bot_log.splitlines()),
        fake_discord_cpu_seconds=run.fake_discord_cpu,
        fake_comet_cpu_seconds=run.fake_comet_cpu,
        db_statuses=dict(run.db_statuses),
        delivery_by_model_ms={m: pct(v, 50) * 1000 for m, v in sorted(delays.items())},
        delivery_stages_ms={k: (pct(v, 50) * 1000, pct(v, 99) * 1000) for k, v in stages.items()},
        problems=problems + ([f"(per-job Discord calls counted for {len(per_job)} jobs)"] if not per_job else []),
    )


# -- output --------------------------------------------------------------------------------------------


def verdicts(fig: Figures) -> list[tuple[str, bool]]:
    return [
        (f"ack p99 < {TARGETS['ack_p99_ms']:.0f} ms", fig.ack_p99_ms < TARGETS["ack_p99_ms"]),
        (f"delivery delay p50 < {TARGETS['delivery_p50_ms']:.0f} ms", fig.delivery_p50_ms < TARGETS["delivery_p50_ms"]),
        (
            f"at most one progress edit per job per {EDIT_WINDOW:g} s",
            fig.progress_edits_max_in_window <= TARGETS["edits_per_window"],
        ),
        (f"peak RSS < {TARGETS['peak_rss_mb']:.0f} MB", fig.peak_rss_mb < TARGETS["peak_rss_mb"]),
        ("zero lost", fig.lost == 0 and fig.acknowledged == fig.fired),
        ("zero duplicate creates", fig.duplicate_creates == 0),
    ]


def render(args: argparse.Namespace, run: Run, fig: Figures) -> str:
    mix = Counter(job.short for job in run.jobs)
    images = sum(job.options.get("num_outputs", 1) for job in run.jobs)
    routes = sorted(fig.discord_calls_by_route.items(), key=lambda kv: -kv[1])
    comet = fig.comet_requests_by_route
    lines = [
        f"Load benchmark: {fig.jobs} /imagine over {args.spread:g} s from {args.users} users in {args.guilds} servers "
        f"(seed {args.seed}); " + ", ".join(f"{count} {model}" for model, count in mix.most_common()),
        f"{images} images asked for, each {args.image_kb} KB; fake CometAPI speed 1.0; bot: {bot_settings_used(args)}",
        f"Three processes: bot, fake Discord, fake CometAPI; {os.cpu_count()} CPUs. "
        + (f"Each message edit held {args.edit_delay_ms:g} ms by the fake. " if args.edit_delay_ms else "")
        + f"Jobs ended {run.end_wall - run.t0_wall:.1f} s after the burst began.",
        "",
        f"{'interactions fired / acknowledged':<52}{fig.fired} / {fig.acknowledged}",
        f"{'ack latency p50 / p99 / max (ms)':<52}{fig.ack_p50_ms:.0f} / {fig.ack_p99_ms:.0f} / {fig.ack_max_ms:.0f}",
        f"{'answered with the job card / with thinking…':<52}{fig.answered_with_card} / {fig.answered_thinking}",
        f"{'jobs delivered / failed / lost':<52}{fig.delivered} / {fig.failed} / {fig.lost}",
        f"{'delivery delay p50 / p99 / max (ms)':<52}"
        f"{fig.delivery_p50_ms:.0f} / {fig.delivery_p99_ms:.0f} / {fig.delivery_max_ms:.0f}",
        f"{'  p50 by model (ms)':<52}" + ", ".join(f"{m} {v:.0f}" for m, v in fig.delivery_by_model_ms.items()),
        f"{'  stages p50 / p99 (ms)':<52}"
        + ", ".join(f"{k} {a:.0f} / {b:.0f}" for k, (a, b) in fig.delivery_stages_ms.items()),
        f"{'CometAPI creates / duplicates':<52}{fig.creates} / {fig.duplicate_creates}",
        f"{'CometAPI GETs per prediction':<52}{fig.gets_per_prediction:.2f}",
        f"{'CometAPI requests during the run':<52}" + ", ".join(f"{k} {v}" for k, v in sorted(comet.items())),
        f"{'CometAPI 429s received (bot log)':<52}{fig.comet_429}",
        f"{'Discord REST calls per job (all routes)':<52}{fig.discord_calls_per_job:.2f}",
        *(f"    {count:6.2f}  {route}" for route, count in routes),
        f"{'Discord 429s received':<52}{fig.discord_429}",
        f"{'message edits per job, mean':<52}{fig.edits_per_job_mean:.2f}",
        f"{'  by what they showed':<52}"
        + ", ".join(f"{what} {per_job:.2f}" for what, per_job in fig.edits_per_job_by_shown.items()),
        f"{'max progress edits of one job in any 1.5 s':<52}{fig.progress_edits_max_in_window} "
        f"({fig.jobs_over_one_progress_edit_per_window} job(s) over 1; min gap {fig.min_progress_edit_gap_ms:.0f} ms)",
        f"{'max edits incl. the final one in any 1.5 s':<52}{fig.all_edits_max_in_window}",
        f"{'bot CPU: total s / ms per job (of it in the kernel)':<52}"
        f"{fig.cpu_seconds:.1f} / {fig.cpu_ms_per_job:.1f} ({fig.cpu_system_ms_per_job:.1f})",
        f"{'bot HTTP requests per job / CPU ms per request':<52}"
        f"{fig.requests_per_job:.2f} / {fig.cpu_ms_per_request:.2f}",
        f"{'bot RSS before / peak (VmHWM) / at the end MB':<52}"
        f"{fig.rss_before_mb:.0f} / {fig.peak_rss_mb:.0f} / {fig.rss_end_mb:.0f} "
        f"(sampled peak {fig.rss_peak_at_s:.1f} s after the burst began)",
        f"{'bot longest event-loop stall (ms) / stalls > 500 ms':<52}"
        f"{'-' if fig.longest_stall_ms is None else f'{fig.longest_stall_ms:.0f}'} / {fig.stalls_over_500ms}",
        f"{'fake CPU s during the run: Discord / CometAPI':<52}"
        f"{fig.fake_discord_cpu_seconds:.1f} / {fig.fake_comet_cpu_seconds:.1f}",
        f"{'job statuses in the bot database':<52}{fig.db_statuses}",
        "",
        "Targets:",
        *(f"  {'met ' if ok else 'MISSED'}  {label}" for label, ok in verdicts(fig)),
    ]
    if fig.problems:
        lines += ["", f"Problems ({len(fig.problems)}):", *(f"  {p}" for p in fig.problems[:20])]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=500, help="/imagine commands (default 500)")
    parser.add_argument("--spread", type=float, default=10.0, help="seconds over which they arrive (default 10)")
    parser.add_argument("--users", type=int, default=200, help="distinct users (default 200)")
    parser.add_argument("--guilds", type=int, default=50, help="servers; each user is in one (default 50)")
    parser.add_argument("--channels", type=int, default=2, help="channels per server (default 2)")
    parser.add_argument("--seed", type=int, default=1, help="workload and fake seed (default 1)")
    parser.add_argument("--edit-delay-ms", type=float, default=0.0,
                        help="the fake Discord holds each message edit this long before handling it")  # fmt: skip
    parser.add_argument("--inject-429", type=int, default=0, metavar="N",
                        help="answer the first N polls and the first N message edits with 429")  # fmt: skip
    parser.add_argument("--image-kb", default=FILE_KB, help=f"LOW-HIGH KB of each output image ({FILE_KB})")
    parser.add_argument("--no-kontext", action="store_true", help="leave out flux-kontext-pro (needs an upload)")
    parser.add_argument("--max-concurrent", type=int, default=600, help="bot MAX_CONCURRENT_PREDICTIONS (600)")
    parser.add_argument("--max-jobs-per-user", type=int, default=100, help="bot MAX_JOBS_PER_USER (default 100)")
    parser.add_argument("--settle", type=float, default=30.0,
                        help="give up after this long with no job ending (soak: the wait at the end)")  # fmt: skip
    parser.add_argument("--limit", type=float, default=180.0, help="give up waiting for the jobs after this long")
    parser.add_argument("--profile", type=Path, default=None,
                        help="py-spy the bot into this file (.svg flamegraph, .json speedscope, else raw)")  # fmt: skip
    parser.add_argument("--bot-env", action="append", default=[], metavar="NAME=VALUE",
                        help="one more environment variable for the bot (repeatable)")  # fmt: skip
    parser.add_argument("--rss-timeline", action="store_true", help="print the bot's RSS every second")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the database and the three processes' logs here (default: a temp dir)")  # fmt: skip
    parser.add_argument("--dump", type=Path, default=None, help="write the raw records (large) to this file")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    soak = parser.add_argument_group("soak mode (bench/soak.py): a steady rate for a long time instead of a burst")
    soak.add_argument("--duration", type=float, default=None, help="seconds of steady load (turns soak mode on)")
    soak.add_argument("--rate", type=float, default=5.0, help="/imagine per second (default 5)")
    soak.add_argument("--database-url", default=None,
                      help="a PostgreSQL server (postgresql://...): the run makes its own database there and "
                           "drops it after; default: a SQLite file")  # fmt: skip
    soak.add_argument("--every", type=float, default=60.0, help="seconds between two rows of figures (default 60)")
    soak.add_argument("--reroll-share", type=float, default=0.10, help="share of arrivals that also reroll (0.10)")
    soak.add_argument("--vary-share", type=float, default=0.10, help="share that also vary an image (0.10)")
    soak.add_argument("--cancel-share", type=float, default=0.05, help="share that also cancel a job (0.05)")
    soak.add_argument("--csv", type=Path, default=None, help="write the rows to this CSV file as they come")
    args = parser.parse_args(argv)
    try:
        low, high = (int(part) * 1000 for part in args.image_kb.split("-"))
    except ValueError:
        parser.error("--image-kb must look like 100-1500")
    args.image_bytes = (low, high)
    if args.jobs < 1 or args.users < 1 or args.guilds < 1:
        parser.error("--jobs, --users and --guilds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.duration is not None:
        from bench import soak

        soak.run(args)
        return
    result = run(args)
    fig = figures(result)
    print(render(args, result, fig))
    if args.dump is not None:
        args.dump.write_text(json.dumps(asdict(result), default=str) + "\n")
        print(f"Raw records written to {args.dump}")
    if args.rss_timeline:
        print(
            "RSS timeline (s after the burst began, MB): "
            + ", ".join(f"{t:.1f} {m:.0f}" for t, m in result.rss_samples[::4])
        )
    if args.json is not None:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, **asdict(fig)}, indent=2,
                                        default=str) + "\n")  # fmt: skip
        print(f"Figures written to {args.json}")


if __name__ == "__main__":
    main()
