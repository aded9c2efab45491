"""Soak mode of the load benchmark: a steady rate of /imagine for a long time, with rerolls, variations and cancels
mixed in, to see whether anything in the bot grows with the jobs it has done. Run by hand:

    python -m bench.load --duration 1800 --rate 5 [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
                         [--csv out/soak.csv] [--json out/soak.json]

Every `--every` seconds (60) it prints and records one row: the bot's RSS, open files, asyncio tasks and longest
event-loop stall since the last row (from its /metrics), the images it holds in memory, its jobs in flight, the
database's size and its job count, and the CPU the bot and the two fakes used. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import csv
import json
import os
import random
import re
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from bench.load import (
    MIX,
    RATIOS,
    STYLES,
    SUBJECTS,
    Http,
    bot_env,
    fakes_running,
    free_port,
    proc_usage,
    process,
    read_log,
    small_png,
    wait_bot_ready,
)
from fakes.cometapi_models import MODELS


@dataclass
class Row:
    minute: float  # minutes since the steady load began
    rss_mb: float
    open_files: int
    tasks: int
    loop_lag_ms: float  # the longest event-loop stall since the last row
    image_memory_mb: float
    images_spilled: int
    jobs_in_flight: int
    queue_depth: int
    jobs_in_db: int
    db_mb: float
    commands: int  # /imagine fired so far
    clicks: int  # rerolls, variations and cancels pressed so far
    bot_cpu_s: float
    discord_cpu_s: float
    comet_cpu_s: float


class Driver:
    """Fires the workload: /imagine at the rate, and now and then a press on an earlier job's message."""

    def __init__(self, args: argparse.Namespace, discord: Http, world: dict[str, Any]) -> None:
        self.args = args
        self.discord = discord
        self.rng = random.Random(args.seed)
        self.users = world["users"]
        self.channels = {g["id"]: g["channel_ids"] for g in world["guilds"]}
        self.image = small_png(args.seed)
        self.recent: deque[tuple[float, str]] = deque(maxlen=200)  # (fired at, interaction id): cancel candidates
        self.done: deque[str] = deque(maxlen=500)  # interaction ids of older commands: reroll and vary candidates
        self.commands = self.clicks = self.errors = 0
        self.pressed: dict[str, int] = {"reroll": 0, "vary": 0, "cancel": 0}

    async def imagine(self) -> None:
        index = self.commands
        self.commands += 1
        model = self.rng.choices(list(MIX), weights=list(MIX.values()))[0]
        user = self.rng.choice(self.users)
        guild = self.rng.choice(user["guild_ids"])
        style = self.rng.choice(STYLES)
        options: dict[str, Any] = {
            "prompt": f"{self.rng.choice(SUBJECTS)}{', ' + style if style else ''} #{index}",
            "model": model,
            "aspect_ratio": self.rng.choice(RATIOS),
        }
        if MODELS[model].max_outputs > 1:
            options["num_outputs"] = self.rng.randint(1, 4)
        body: dict[str, Any] = {
            "name": "imagine", "options": options, "guild_id": guild,
            "channel_id": self.rng.choice(self.channels[guild]), "user_id": user["id"],
        }  # fmt: skip
        if MODELS[model].needs_input_image:
            body["attachments"] = {"image": {"filename": f"in-{index}.png", "base64": _b64(self.image)}}
        try:
            answer = await self.discord.call("POST", "/_fake/slash", body)
        except (aiohttp.ClientError, RuntimeError):
            self.errors += 1
            return
        self.recent.append((time.monotonic(), answer["interaction_id"]))

    async def press(self, action: str) -> None:
        """Reroll or vary a delivered result, or cancel a job a moment after it began."""
        if action == "cancel":
            young = [i for t, i in self.recent if 1.0 < time.monotonic() - t < 4.0]
            pool = young
        else:
            while self.recent and time.monotonic() - self.recent[0][0] > 30:
                self.done.append(self.recent.popleft()[1])
            pool = list(self.done)
        if not pool:
            return
        interaction_id = self.rng.choice(pool)
        try:
            inter = await self.discord.call("GET", f"/_fake/interactions/{interaction_id}")
            message_id = inter.get("original_message_id")
            if not message_id:
                return
            (message,) = await self.discord.call("GET", f"/_fake/messages?ids={message_id}")
            wanted = re.compile(rf"flux:{action}:[0-9a-f]{{32}}(:1(:subtle)?)?$")
            ids = [c for c in _custom_ids(message["components"]) if wanted.match(c)]
            if not ids:
                return
            user = inter["user_id"]
            await self.discord.call(
                "POST", "/_fake/click", {"message_id": message_id, "custom_id": ids[0], "user_id": user}
            )
        except (aiohttp.ClientError, RuntimeError, ValueError):
            self.errors += 1
            return
        self.clicks += 1
        self.pressed[action] += 1

    async def run(self, until: float) -> None:
        """Arrivals at `--rate` per second (Poisson), each with a chance of a press beside it."""
        pending: set[asyncio.Task[None]] = set()
        while time.monotonic() < until:
            await asyncio.sleep(self.rng.expovariate(self.args.rate))
            work = [self.imagine()]
            draw = self.rng.random()
            if draw < self.args.reroll_share:
                work.append(self.press("reroll"))
            elif draw < self.args.reroll_share + self.args.vary_share:
                work.append(self.press("vary"))
            elif draw < self.args.reroll_share + self.args.vary_share + self.args.cancel_share:
                work.append(self.press("cancel"))
            for coro in work:
                task = asyncio.create_task(coro)
                pending.add(task)
                task.add_done_callback(pending.discard)
        await asyncio.gather(*pending, return_exceptions=True)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _custom_ids(components: list[dict[str, Any]]) -> list[str]:
    found: list[str] = []
    for comp in components or []:
        if comp.get("custom_id"):
            found.append(comp["custom_id"])
        found += _custom_ids(comp.get("components") or [])
    return found


# -- the database -------------------------------------------------------------------------------------------


class Database:
    """A fresh database for the run: a SQLite file, or a new PostgreSQL database made beside `--database-url`."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.postgres = args.database_url is not None
        self.name = f"flux_soak_{os.getpid()}"
        if self.postgres:
            parts = urlsplit(args.database_url)
            self.admin_url = args.database_url
            self.url = urlunsplit(parts._replace(path=f"/{self.name}"))
        else:
            self.path = tmp / "bot.db"
            self.url = f"sqlite:///{self.path}"

    async def create(self) -> None:
        if self.postgres:
            import asyncpg

            conn = await asyncpg.connect(self.admin_url)
            try:
                await conn.execute(f'CREATE DATABASE "{self.name}"')
            finally:
                await conn.close()

    async def drop(self) -> None:
        if self.postgres:
            import asyncpg

            conn = await asyncpg.connect(self.admin_url)
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            finally:
                await conn.close()

    async def size(self) -> tuple[int, float]:
        """(jobs in the table, megabytes the database takes)."""
        if self.postgres:
            import asyncpg

            conn = await asyncpg.connect(self.url)
            try:
                jobs = await conn.fetchval("SELECT count(*) FROM jobs")
                size = await conn.fetchval("SELECT pg_database_size(current_database())")
            except asyncpg.UndefinedTableError:
                return 0, 0.0
            finally:
                await conn.close()
            return int(jobs), size / 1e6
        import sqlite3

        size = sum(p.stat().st_size for p in self.path.parent.glob("bot.db*"))
        with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)) as db:
            try:
                jobs = db.execute("SELECT count(*) FROM jobs").fetchone()[0]
            except sqlite3.OperationalError:
                jobs = 0
        return int(jobs), size / 1e6


# -- sampling ----------------------------------------------------------------------------------------------------


def gauges(text: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("flux_") and " " in line and "{" not in line:
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


async def sample(
    session: aiohttp.ClientSession, metrics_url: str, pid: int, fakes: dict[str, int], db: Database, driver: Driver,
    t0: float, cpu0: dict[str, float],
) -> Row:  # fmt: skip
    async with session.get(metrics_url) as response:
        found = gauges(await response.text())
    usage = proc_usage(pid)
    jobs, db_mb = await db.size()
    return Row(
        minute=round((time.monotonic() - t0) / 60, 2),
        rss_mb=round(usage.rss_mb, 1),
        open_files=len(os.listdir(f"/proc/{pid}/fd")),
        tasks=int(found.get("flux_asyncio_tasks", -1)),
        loop_lag_ms=round(found.get("flux_event_loop_lag_seconds", -1) * 1000, 1),
        image_memory_mb=round(found.get("flux_image_memory_bytes", 0) / 1e6, 1),
        images_spilled=int(found.get("flux_images_spilled", 0)),
        jobs_in_flight=int(found.get("flux_jobs_in_flight", -1)),
        queue_depth=int(found.get("flux_queue_depth", -1)),
        jobs_in_db=jobs,
        db_mb=round(db_mb, 2),
        commands=driver.commands,
        clicks=driver.clicks,
        bot_cpu_s=round(usage.cpu_seconds - cpu0["bot"], 1),
        discord_cpu_s=round(proc_usage(fakes["discord"]).cpu_seconds - cpu0["discord"], 1),
        comet_cpu_s=round(proc_usage(fakes["comet"]).cpu_seconds - cpu0["comet"], 1),
    )


def growth(rows: list[Row], minutes: float) -> tuple[float, float]:
    """(RSS growth in MB over the last `minutes` of the run, and per minute by least squares over them)."""
    if not rows:
        return float("nan"), float("nan")
    end = rows[-1].minute
    window = [r for r in rows if r.minute >= end - minutes - 0.01] or rows
    xs, ys = [r.minute for r in window], [r.rss_mb for r in window]
    if len(xs) < 2:
        return 0.0, 0.0
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return window[-1].rss_mb - window[0].rss_mb, slope


HEADER = (
    f"{'min':>5} {'RSS MB':>7} {'files':>5} {'tasks':>6} {'lag ms':>7} {'img MB':>6} {'spill':>6} {'flight':>6} "
    f"{'queue':>5} {'db jobs':>7} {'db MB':>6} {'cmds':>6} {'clicks':>6} {'bot s':>6} {'dsc s':>6} {'cmt s':>6}"
)


def line(r: Row) -> str:
    return (
        f"{r.minute:5.1f} {r.rss_mb:7.1f} {r.open_files:5d} {r.tasks:6d} {r.loop_lag_ms:7.1f} {r.image_memory_mb:6.1f} "
        f"{r.images_spilled:6d} {r.jobs_in_flight:6d} {r.queue_depth:5d} {r.jobs_in_db:7d} {r.db_mb:6.2f} "
        f"{r.commands:6d} {r.clicks:6d} {r.bot_cpu_s:6.1f} {r.discord_cpu_s:6.1f} {r.comet_cpu_s:6.1f}"
    )


async def drive(args: argparse.Namespace, tmp: Path, comet_url: str, discord_port: int, fakes: dict[str, int]) -> None:
    db = Database(args, tmp)
    await db.create()
    rows: list[Row] = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            discord = Http(session, f"http://127.0.0.1:{discord_port}")
            comet = Http(session, comet_url)
            await comet.wait_ready("/_fake/config")
            await discord.wait_ready("/_fake/state")
            await comet.call("POST", "/_fake/config", {"prefer_wait": False})
            world = await discord.call(
                "POST", "/_fake/world", {"guilds": args.guilds, "channels": args.channels, "users": args.users}
            )
            metrics_port = free_port()
            env = bot_env(args, tmp, comet_url, discord_port)
            env.update({"DATABASE_URL": db.url, "METRICS_PORT": str(metrics_port), "LOG_LEVEL": "WARNING"})
            log = tmp / "bot.log"
            with process([sys.executable, "bot.py"], log, env=env) as bot:
                await wait_bot_ready_quiet(discord, log, bot)
                metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
                driver = Driver(args, discord, world)
                cpu0 = {"bot": proc_usage(bot.pid).cpu_seconds}
                cpu0 |= {name: proc_usage(pid).cpu_seconds for name, pid in fakes.items()}
                t0 = time.monotonic()
                run = asyncio.create_task(driver.run(t0 + args.duration))
                print(
                    f"Soak: {args.rate:g} /imagine per second for {args.duration:g} s on "
                    f"{'PostgreSQL' if db.postgres else 'SQLite'}; rerolls {args.reroll_share:.0%}, variations "
                    f"{args.vary_share:.0%}, cancels {args.cancel_share:.0%} of arrivals",
                    flush=True,
                )
                print(HEADER, flush=True)
                while not run.done():
                    await asyncio.wait({run}, timeout=args.every)
                    row = await sample(session, metrics_url, bot.pid, fakes, db, driver, t0, cpu0)
                    rows.append(row)
                    print(line(row), flush=True)
                    write(args, rows, driver)
                await run
                await asyncio.sleep(args.settle)  # the last jobs end
                rows.append(await sample(session, metrics_url, bot.pid, fakes, db, driver, t0, cpu0))
                print(line(rows[-1]) + "  (after the last jobs ended)", flush=True)
            write(args, rows, driver)
            summary(args, rows, driver)
    finally:
        await db.drop()


async def wait_bot_ready_quiet(discord: Http, log: Path, bot: Any) -> None:
    """Ready once the gateway session is live and the commands synced ("Logged in as" is not logged at WARNING)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = await discord.call("GET", "/_fake/state")
        if state["live_sessions"] and "imagine" in state["commands"]:
            await asyncio.sleep(2.0)
            return
        if bot.poll() is not None:
            text = await asyncio.to_thread(read_log, log)
            raise RuntimeError(f"the bot exited during start-up; its log:\n{text[-3000:]}")
        await asyncio.sleep(0.2)
    raise RuntimeError("the bot did not become ready within 60 s")


def write(args: argparse.Namespace, rows: list[Row], driver: Driver) -> None:
    if args.csv is not None:
        with args.csv.open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(asdict(rows[0])))
            writer.writeheader()
            writer.writerows(asdict(r) for r in rows)
    if args.json is not None:
        data = {"rate": args.rate, "duration": args.duration, "postgres": args.database_url is not None,
                "pressed": driver.pressed, "errors": driver.errors, "rows": [asdict(r) for r in rows]}  # fmt: skip
        args.json.write_text(json.dumps(data, indent=1) + "\n")


def summary(args: argparse.Namespace, rows: list[Row], driver: Driver) -> None:
    steady = [r for r in rows if r.minute <= args.duration / 60 + 0.01]
    last = min(20.0, max(1.0, (args.duration / 60) * 2 / 3))
    grown, slope = growth(steady, last)
    print()
    print(f"Commands {driver.commands}, presses {driver.pressed}, driver errors {driver.errors}")
    print(f"RSS over the last {last:g} min of the steady load: {grown:+.1f} MB ({slope:+.2f} MB/min by least squares)")
    if steady:
        first = steady[min(len(steady) - 1, 1)]
        print(
            f"From minute {first.minute:g} to {steady[-1].minute:g}: open files {first.open_files} -> "
            f"{steady[-1].open_files}, tasks {first.tasks} -> {steady[-1].tasks}, jobs in the database "
            f"{first.jobs_in_db} -> {steady[-1].jobs_in_db}, database {first.db_mb:.1f} -> {steady[-1].db_mb:.1f} MB"
        )
        cpu = steady[-1].bot_cpu_s / max(1, steady[-1].commands + steady[-1].clicks) * 1000
        print(f"bot CPU per job: {cpu:.1f} ms (fakes: Discord {steady[-1].discord_cpu_s:.0f} s, CometAPI "
              f"{steady[-1].comet_cpu_s:.0f} s)")  # fmt: skip
    verdict = "met" if grown < 5.0 else "MISSED"
    print(f"  {verdict}  RSS grows < 5 MB over the last {last:g} min")


def run(args: argparse.Namespace) -> None:
    with fakes_running(args, "bench-soak-") as up:
        fakes = {"comet": up.comet.pid, "discord": up.discord.pid}
        asyncio.run(drive(args, up.tmp, up.comet_url, up.discord_port, fakes))


__all__ = ["run", "wait_bot_ready"]
