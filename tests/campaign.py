"""The fault campaigns' kit: /imagine jobs fired in bursts, what must hold of them after a fault, and the bot as
a real `python bot.py` process (see tests/helpers.py for where the rest of the kit lives).

Every scenario ends the same way: each job is either delivered (its reply carries exactly the files the API
served) or its reply says in a line or two what went wrong; no job is left in an active status; nothing was
created twice; and the bot still delivers a new /imagine afterwards.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cli.harness import KEY, TOKEN, wait_status
from fakes.discord import FakeDiscord, FakeUser, Fault, InteractionHandle
from services.store.models import TERMINAL, Job
from tests.card import card
from tests.helpers import add_member, imagine, job_shown_in

ROOT = Path(__file__).resolve().parent.parent  # the repository


def bot_env(world, tmp_path: Path) -> dict[str, str]:
    """The environment of a real `python bot.py` against the world's fakes, its SQLite file in `tmp_path`."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "DISCORD_TOKEN": TOKEN,
        "COMETAPI_KEY": KEY,
        "COMETAPI_BASE_URL": world.comet.base_url,
        "DISCORD_API_BASE_URL": world.discord.api_base_url,
        "DISCORD_GATEWAY_URL": world.discord.gateway_url,
        "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
        "USER_COOLDOWN": "0",
        "LOG_LEVEL": "INFO",
    }


def count_in_log(log: Path, text: str) -> int:
    """How many times `text` appears in a process's log so far."""
    return log.read_text().count(text) if log.exists() else 0


@dataclass
class Sent:
    """One /imagine fired by a test: who, with which (unique) prompt, and the interaction."""

    user: FakeUser
    prompt: str
    handle: InteractionHandle


async def burst(world, guild, channel, count: int, tag: str, **options: Any) -> list[Sent]:
    """`count` users each run /imagine at once (prompts `tag 0`, `tag 1`, ...)."""
    sent = []
    for n in range(count):
        user = add_member(world, guild, f"{tag}-{n}")
        prompt = f"{tag} {n}"
        sent.append(Sent(user, prompt, await imagine(world, guild, channel, user, prompt=prompt, **options)))
    return sent


async def job_of(bot, sent: Sent, timeout: float = 10.0) -> Job:
    """The stored job behind a reply (it is stored right after the "thinking…" reply exists)."""
    await sent.handle.wait_response(timeout=timeout)
    message_id = sent.handle.original_message_id
    assert message_id is not None
    return await job_shown_in(bot, message_id, timeout=timeout)


async def ended(bot, sents: list[Sent], timeout: float = 30.0) -> dict[str, Job]:
    """Each job once it has ended, by prompt."""
    jobs = {}
    for sent in sents:
        job = await job_of(bot, sent)
        jobs[sent.prompt] = await wait_status(bot, job.id, *TERMINAL, timeout=timeout)
    return jobs


def served_files(world, prediction_id: str) -> list[bytes]:
    prediction = world.comet.predictions[prediction_id]
    return [world.comet.file_bytes(url) for url in prediction.file_urls(world.comet.base_url)]


async def assert_delivered(world, sent: Sent, job: Job) -> None:
    assert job.status == "succeeded", (sent.prompt, job.status, job.error)
    assert job.prediction_id is not None
    msg = await sent.handle.wait_original(lambda m: bool(m.attachments))
    assert msg.attachment_bytes() == served_files(world, job.prediction_id), sent.prompt
    assert job.image_count == len(msg.attachments)
    assert "⚠️" not in msg.text and "🛑" not in msg.text
    assert sent.prompt in card(msg).prompt


async def assert_told(world, sent: Sent, job: Job, status: str, *words: str) -> str:
    """The job ended with `status` and its own reply says so in a line or two, containing `words`."""
    assert job.status == status, (sent.prompt, job.status, job.error)

    def says(m) -> bool:
        return all(re.search(w, m.text, re.IGNORECASE) for w in words)

    try:
        msg = await sent.handle.wait_original(says)
    except TimeoutError:
        raise AssertionError(f"{words} not in {sent.handle.original_message()!r}") from None
    text = msg.text
    assert sent.prompt in text
    lines = [line for line in text.splitlines() if line.strip()]
    assert 3 <= len(lines) <= 4, text  # the prompt, its facts line, then one or two lines of reason
    for bad in ("Traceback", "Error:", "Exception", "HTTP 4", "HTTP 5", 'File "', "<html"):
        assert bad not in text, text
    assert msg.attachments == []
    assert ":cancel:" not in str(msg.components), "a finished job keeps no Cancel button"
    return text


def creates_by_prompt(world) -> Counter[str]:
    return Counter(str((c.json or {}).get("input", {}).get("prompt")) for c in world.comet.creates())


def predictions_by_prompt(world) -> Counter[str]:
    return Counter(str(p.input.get("prompt")) for p in world.comet.predictions.values())


async def assert_nothing_lost(world, bot, jobs: dict[str, Job], *, extra_creates: int = 0) -> None:
    """No active job left; one create per job that got one (plus `extra_creates` refused ones: 429s); at most
    one prediction per job, and a delivered job's prediction is the one it recorded."""
    assert await bot.store.active_jobs(None) == []
    creates = creates_by_prompt(world)
    predictions = predictions_by_prompt(world)
    assert sum(creates[p] for p in jobs) == sum(1 for p in jobs if creates[p]) + extra_creates, creates
    for prompt, job in jobs.items():
        assert predictions[prompt] <= 1, (prompt, predictions[prompt])
        if job.prediction_id is not None:
            assert world.comet.predictions[job.prediction_id].input["prompt"] == prompt
            assert creates[prompt] >= 1
    assert world.discord.internal_errors == []
    assert world.discord.unhandled == []
    assert world.comet.pending_faults() == [], "an injected API fault never fired"
    assert all(f.times is None or f.hits == f.times for f in world.discord.faults), "a Discord fault never fired"


async def assert_still_serving(world, bot, guild, channel, tag: str = "afterwards") -> None:
    """A new user's /imagine, after the storm, is delivered."""
    [sent] = await burst(world, guild, channel, 1, tag)
    [job] = (await ended(bot, [sent])).values()
    await assert_delivered(world, sent, job)
    assert creates_by_prompt(world)[sent.prompt] == 1


def inject_on_upload(
    world, path_regex: str, status: int | None, *, json: Any = None, times: int | None = 1, drop: bool = False
) -> Fault:
    """A fault for the uploads (the result) to `path_regex`, not the progress edits to the same path; status None
    and `drop`: the connection is cut once the upload took effect."""
    d: FakeDiscord = world.discord
    return d.inject("PATCH", path_regex, status, json=json, times=times, drop=drop, with_files=True)


def inject_on_progress(world, path_regex: str, *, times: int | None = 1) -> Fault:
    """The connection cut at the progress edits (no files) to `path_regex`, once each took effect."""
    d: FakeDiscord = world.discord
    return d.inject("PATCH", path_regex, None, times=times, drop=True, with_files=False)


@dataclass
class NthRequest(Fault):
    """A fault for the n-th request to a path only; the ones before it are answered normally."""

    n: int = 1
    fake: Any = None

    def matches(self, method: str, path: str, *, files: bool = False) -> bool:
        if not super().matches(method, path, files=files):
            return False
        # The request being answered was recorded just before the fake looks for a fault.
        return len([r for r in self.fake.requests if (r.method, r.path) == (method, path)]) == self.n


async def start_bot(world, tmp_path: Path, log: Path, **env: str) -> asyncio.subprocess.Process:
    """`python bot.py` with extra settings; returns once it has logged in (its log is appended to `log`)."""
    ready_before = count_in_log(log, "Logged in as")
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "bot.py"), cwd=tmp_path, env={**bot_env(world, tmp_path), **env},
        stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(30):
        while count_in_log(log, "Logged in as") == ready_before:
            assert process.returncode is None, log.read_text()
            await asyncio.sleep(0.05)
    return process


async def stop_bot(process: asyncio.subprocess.Process, log: Path) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    code = await asyncio.wait_for(process.wait(), timeout=30)
    assert code == 0, log.read_text()


def assert_one_create_each(world, jobs: dict[str, Job]) -> None:
    creates, predictions = creates_by_prompt(world), predictions_by_prompt(world)
    for prompt, job in jobs.items():
        assert creates[prompt] == 1, (prompt, creates[prompt])
        assert predictions[prompt] == 1
        if job.prediction_id is not None:
            assert world.comet.predictions[job.prediction_id].input["prompt"] == prompt


def assert_clean_log(log: Path) -> None:
    text = log.read_text()
    assert KEY not in text
    assert TOKEN not in text
    assert "Traceback" not in text, text[-3000:]


async def run_bot(
    discord: FakeDiscord, cwd: Path, *args: str, prefix: tuple[str, ...] = (), **env: str
) -> tuple[int, str, str]:
    """Run `python bot.py ARGS` (under `prefix`, if given); its exit status, stdout and stderr."""
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "DISCORD_TOKEN": TOKEN,
        "COMETAPI_KEY": KEY,
        "COMETAPI_BASE_URL": "http://127.0.0.1:9",  # never reached: everything here ends before login
        "DISCORD_API_BASE_URL": discord.api_base_url,
        "DISCORD_GATEWAY_URL": discord.gateway_url,
        "DATABASE_URL": f"sqlite:///{cwd}/bot.db",
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        *prefix, sys.executable, str(ROOT / "bot.py"), *args, cwd=cwd, env=environ,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=90)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
