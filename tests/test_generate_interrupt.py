"""`python bot.py generate` stopped by SIGINT or SIGTERM, and `--out` checked before anything is sent.

Both sides are real processes: the standalone fake CometAPI (`python -m fakes.cometapi`), set up and read
through its /_fake/ control routes, and `python bot.py generate`. A signal is sent on an event (a progress
line on stderr, or the fake having received the create), never after a fixed sleep.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cli.interrupt import Interrupted, StopSignal, run_stoppable
from fakes.cometapi import FakeCometAPI
from services.cometapi.polling import Update
from services.cometapi.service import PredictionService
from services.config import Settings
from services.secrets import Secret

KEY = "sk-test-cometapi-0123456789abcdef"
REPO = Path(__file__).resolve().parents[1]
PROGRESS = re.compile(r": (starting|generating)")  # a progress line: the prediction exists


@dataclass
class Fake:
    base_url: str
    http: aiohttp.ClientSession

    async def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        method = "GET" if body is None else "POST"
        async with self.http.request(method, self.base_url + path, json=body) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def requests(self, route: str | None = None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.control("/_fake/requests" + (f"?route={route}" if route else ""))
        return found

    async def predictions(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.control("/_fake/predictions")
        return found

    async def wait_for_create(self) -> None:
        """Until the fake has received a create (it runs in another process, so it is asked over HTTP)."""
        async with asyncio.timeout(30):
            while True:
                if await self.requests("create"):
                    return
                await asyncio.sleep(0.02)


@pytest.fixture
async def fake() -> AsyncIterator[Fake]:
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fakes.cometapi", "--port", "0", "--key", KEY, "--speed", "0.02",
        "--image-size", "20000", cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        banner = (await asyncio.wait_for(server.stdout.readline(), 30)).decode()
        found = re.search(r" on (http://\S+)", banner)
        assert found, banner
        async with aiohttp.ClientSession() as http:
            yield Fake(found[1], http)
    finally:
        server.terminate()
        await server.wait()


async def start_generate(fake: Fake, cwd: Path, *args: str) -> asyncio.subprocess.Process:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(cwd),
        "PYTHONPATH": str(REPO),
        "PYTHONDONTWRITEBYTECODE": "1",
        "COMETAPI_BASE_URL": fake.base_url,
        "COMETAPI_KEY": KEY,
    }
    return await asyncio.create_subprocess_exec(
        sys.executable, str(REPO / "bot.py"), "generate", *args, cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def read_stderr_until(process: asyncio.subprocess.Process, pattern: re.Pattern[str]) -> str:
    """stderr up to and including the first line matching `pattern`."""
    assert process.stderr is not None
    seen = ""
    async with asyncio.timeout(30):
        while not pattern.search(seen):
            line = (await process.stderr.readline()).decode()
            assert line, f"generate ended first: {seen}"
            seen += line
    return seen


@dataclass(frozen=True)
class Ended:
    code: int
    stdout: str
    stderr: str


async def finish(process: asyncio.subprocess.Process, stderr_so_far: str = "") -> Ended:
    try:
        out, err = await asyncio.wait_for(process.communicate(), 30)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Ended(process.returncode, out.decode(), stderr_so_far + err.decode())


def cancels_of(requests: list[dict[str, Any]]) -> list[str]:
    return [r["path"] for r in requests if r["route"] == "cancel"]


@pytest.mark.parametrize(
    ("sig", "code", "cancel_status", "said"),
    [
        (signal.SIGINT, 130, None, "cancelled"),
        (signal.SIGTERM, 143, None, "cancelled"),
        (signal.SIGINT, 130, 405, "the API has no cancel endpoint"),  # a 405 on cancel is no error
    ],
    ids=["sigint", "sigterm", "sigint-cancel-405"],
)
async def test_a_signal_mid_prediction_cancels_it_and_prints_its_id(
    fake: Fake, tmp_path: Path, sig: signal.Signals, code: int, cancel_status: int | None, said: str
) -> None:
    await fake.control("/_fake/outcomes", {"duration": 120})  # still running when the signal comes
    await fake.control("/_fake/config", {"cancel_status": cancel_status})
    process = await start_generate(fake, tmp_path, "a fox", "--model", "flux-schnell")
    before = await read_stderr_until(process, PROGRESS)
    process.send_signal(sig)
    ended = await finish(process, before)

    assert ended.code == code, ended.stderr
    (prediction,) = await fake.predictions()
    pred_id = prediction["id"]
    (last,) = [line for line in ended.stderr.splitlines() if pred_id in line]
    assert f"interrupted ({sig.name})" in last and said in last, ended.stderr
    assert cancels_of(await fake.requests()) == [f"/replicate/v1/predictions/{pred_id}/cancel"]
    if cancel_status is None:
        assert prediction["status"] == "canceled"
    assert len(await fake.requests("create")) == 1
    assert "Traceback" not in ended.stderr
    assert ended.stdout == ""
    assert not (tmp_path / "out").exists()


async def test_a_signal_while_the_create_is_in_flight_waits_for_its_id_and_cancels_it(
    fake: Fake, tmp_path: Path
) -> None:
    # The fake makes the prediction at once but answers the create only after a while.
    await fake.control("/_fake/outcomes", {"duration": 120})
    await fake.control("/_fake/inject", {"route": "create", "status": None, "delay": 2.0})
    process = await start_generate(fake, tmp_path, "a fox", "--model", "flux-schnell")
    await fake.wait_for_create()
    process.send_signal(signal.SIGTERM)
    ended = await finish(process)

    assert ended.code == 143, ended.stderr
    assert "waiting up to 10 s for the answer to the create" in ended.stderr
    (prediction,) = await fake.predictions()
    pred_id = prediction["id"]
    assert f"interrupted (SIGTERM): prediction {pred_id} cancelled" in ended.stderr
    assert cancels_of(await fake.requests()) == [f"/replicate/v1/predictions/{pred_id}/cancel"]
    assert prediction["status"] == "canceled"
    assert "Traceback" not in ended.stderr


async def test_a_signal_while_a_refused_create_waits_to_be_retried_sends_no_retry(fake: Fake, tmp_path: Path) -> None:
    # A 429 refuses the create (nothing made); the client would retry it after Retry-After. A signal in
    # that wait stops it there: no second create is sent, no prediction exists, nothing needs cancelling.
    await fake.control("/_fake/inject", {"route": "create", "status": 429, "headers": {"Retry-After": "30"}})
    process = await start_generate(fake, tmp_path, "a fox", "--model", "flux-schnell")
    await fake.wait_for_create()
    process.send_signal(signal.SIGINT)
    ended = await finish(process)

    assert ended.code == 130, ended.stderr
    assert "interrupted (SIGINT): the create was not sent again; no prediction was created" in ended.stderr
    assert len(await fake.requests("create")) == 1
    assert await fake.predictions() == []
    assert cancels_of(await fake.requests()) == []
    assert "Traceback" not in ended.stderr


async def test_a_signal_before_the_create_sends_nothing() -> None:
    # In-process, as no event outside the command marks "input checked, create not yet sent": the signal
    # is raised for real while the handler is installed, then the prediction is asked for.
    async def on_update(update: Update) -> None:
        raise AssertionError(f"a prediction was made: {update}")

    async with FakeCometAPI(api_key=KEY, speed=0.02) as api:
        settings = Settings(cometapi_key=Secret(KEY), cometapi_base_url=api.base_url)
        with StopSignal().installed() as stop, stop.in_loop():
            signal.raise_signal(signal.SIGTERM)
            async with PredictionService.open(
                settings.api(), typical_seconds=settings.catalogue.typical_seconds(), sleep=stop.retry_sleep
            ) as service:
                with pytest.raises(Interrupted) as caught:
                    await run_stoppable(
                        service, stop, "black-forest-labs/flux-schnell", {"prompt": "a fox"},
                        on_update=on_update, notice=print,
                    )  # fmt: skip
        assert api.requests == []
    assert caught.value.exit_code == 143
    assert str(caught.value) == "interrupted (SIGTERM): nothing was sent; no prediction was created"


async def test_an_out_that_cannot_take_files_exits_2_before_anything_is_sent(fake: Fake, tmp_path: Path) -> None:
    (tmp_path / "taken.png").write_bytes(b"a file, not a folder")
    cases = {
        "taken.png": "it is a file, not a folder",
        "taken.png/pics": f"{Path('taken.png')} is a file, not a folder",
        # Nobody can make a file in /proc, root included (chmod'ed folders don't stop root, so are not used).
        "/proc": "cannot write in it",
        "/proc/pics/today": "cannot write in /proc",
    }
    processes = [await start_generate(fake, tmp_path, "a fox", "--out", out) for out in cases]
    runs = [await finish(process) for process in processes]
    for (out, reason), ended in zip(cases.items(), runs, strict=True):
        assert ended.code == 2, (out, ended.stderr)
        (line,) = ended.stderr.splitlines()  # one line, naming --out
        assert line.startswith(f"error: --out {out}: {reason}"), (out, line)
        assert ended.stdout == ""
    assert await fake.requests() == []  # no create, nor anything else
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.png"]


async def test_a_missing_out_is_made_and_holds_only_the_images(fake: Fake, tmp_path: Path) -> None:
    (tmp_path / "old").mkdir()
    for out in ("old", "new/nested"):
        ended = await finish(await start_generate(fake, tmp_path, "a fox", "--model", "flux-schnell", "--out", out))
        assert ended.code == 0, ended.stderr
        (written,) = ended.stdout.splitlines()
        assert [p.name for p in (tmp_path / out).iterdir()] == [Path(written).name]  # no write-check file left
