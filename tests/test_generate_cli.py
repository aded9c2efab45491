"""`python bot.py generate` as a real subprocess against the fake CometAPI.

The fake serves from this test's event loop while the child runs (asyncio subprocess, not subprocess.run).
Exit statuses: 0 done, 1 the prediction failed, 2 bad input or configuration (nothing sent).
"""

from __future__ import annotations

import asyncio
import base64
import os
import pty
import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fakes.cometapi import FakeCometAPI, Outcome
from services.cometapi.files import sniff
from tests.helpers import png

KEY = "sk-test-cometapi-0123456789abcdef"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
async def fake() -> AsyncIterator[FakeCometAPI]:
    server = FakeCometAPI(api_key=KEY, speed=0.02, seed=0, image_size=20_000)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str


async def generate(fake: FakeCometAPI, cwd: Path, *args: str, key: str = KEY, **env_extra: str) -> Run:
    """Run `python bot.py generate ARGS` in `cwd` with a clean environment pointing at the fake."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(cwd),
        "PYTHONPATH": str(REPO),
        "PYTHONDONTWRITEBYTECODE": "1",
        "COMETAPI_BASE_URL": fake.base_url,
        **env_extra,
    }
    if key:
        env["COMETAPI_KEY"] = key
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO / "bot.py"),
        "generate",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Run(proc.returncode, out.decode(), err.decode())


async def test_success_writes_the_files_and_lists_them(fake: FakeCometAPI, tmp_path: Path) -> None:
    run = await generate(
        fake, tmp_path, "a lighthouse at dusk", "--model", "flux-schnell", "--num-outputs", "2",
        "--output-format", "png", "--seed", "42", "--out", "pics", LOG_LEVEL="DEBUG",
    )  # fmt: skip
    assert run.code == 0, run.stderr
    (pred_id,) = fake.predictions
    (create,) = fake.creates()
    assert create.path == "/replicate/v1/models/black-forest-labs/flux-schnell/predictions"
    assert isinstance(create.json, dict)
    sent = create.json["input"]
    assert sent["prompt"] == "a lighthouse at dusk"
    assert (sent["num_outputs"], sent["output_format"], sent["seed"]) == (2, "png", 42)

    lines = run.stdout.splitlines()
    assert lines == [str(Path("pics") / f"{pred_id}-{n}.png") for n in range(2)]
    urls = fake.predictions[pred_id].file_urls(fake.base_url)
    for line, url in zip(lines, urls, strict=True):
        data = (tmp_path / line).read_bytes()
        assert data == fake.file_bytes(url)
        assert sniff(data) == ("image/png", "png")
    assert "done in" in run.stderr
    assert KEY not in run.stderr and KEY not in run.stdout  # even at LOG_LEVEL=DEBUG


async def test_a_local_image_goes_to_kontext_as_a_data_uri(fake: FakeCometAPI, tmp_path: Path) -> None:
    (tmp_path / "in.png").write_bytes(png())
    run = await generate(
        fake, tmp_path, "make it night", "--model", "flux-kontext-pro", "--image", "in.png", "--output-format", "jpg"
    )
    assert run.code == 0, run.stderr
    (create,) = fake.creates()
    assert create.path == "/replicate/v1/models/black-forest-labs/flux-kontext-pro/predictions"
    assert isinstance(create.json, dict)
    sent = create.json["input"]["input_image"]
    assert sent.startswith("data:image/png;base64,")
    assert base64.b64decode(sent.split(",", 1)[1]) == png()
    (line,) = run.stdout.splitlines()
    (pred_id,) = fake.predictions
    (url,) = fake.predictions[pred_id].file_urls(fake.base_url)
    assert (tmp_path / line).read_bytes() == fake.file_bytes(url)
    assert line.endswith(".jpg")


async def test_a_failed_prediction_exits_1_with_the_reason(fake: FakeCometAPI, tmp_path: Path) -> None:
    fake.queue_outcome(Outcome(status="failed", error="NSFW content detected. Try a different prompt."))
    run = await generate(fake, tmp_path, "a fox", "--model", "flux-schnell")
    assert run.code == 1
    assert "NSFW content detected. Try a different prompt." in run.stderr
    assert run.stdout == ""
    assert not (tmp_path / "out").exists()
    assert len(fake.creates()) == 1


async def test_bad_input_exits_2_and_sends_nothing(fake: FakeCometAPI, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not an image\n")
    cases: list[tuple[tuple[str, ...], str, str]] = [
        (("a fox", "--aspect-ratio", "7:3"), KEY, "aspect_ratio"),
        (("a fox", "--num-outputs", "9"), KEY, "num_outputs must be between 1 and 4"),
        (("",), KEY, "prompt is empty"),
        (("a fox", "--model", "flux-kontext-pro", "--image", "notes.txt"), KEY, "not a PNG, JPEG, GIF or WebP"),
        (("a fox", "--model", "flux-9000"), KEY, "Unknown model"),
        (("a fox",), "", "COMETAPI_KEY"),
    ]
    runs = await asyncio.gather(*(generate(fake, tmp_path, *args, key=key) for args, key, _ in cases))
    for (args, _, reason), run in zip(cases, runs, strict=True):
        assert run.code == 2, (args, run.stderr)
        assert reason in run.stderr, (args, run.stderr)
        assert run.stdout == ""
    assert fake.requests == []
    assert not (tmp_path / "out").exists()


async def test_a_wrong_key_exits_2(fake: FakeCometAPI, tmp_path: Path) -> None:
    wrong = "sk-wrong-key-fedcba9876543210"
    run = await generate(fake, tmp_path, "a fox", key=wrong)
    assert run.code == 2
    assert "refused the key (HTTP 401)" in run.stderr
    assert wrong not in run.stderr and wrong not in run.stdout
    assert run.stdout == ""
    (create,) = fake.creates()
    assert create.headers["Authorization"] == f"Bearer {wrong}"
    assert fake.predictions == {}


TEN = [
    "flux-schnell", "flux-dev", "flux-pro", "flux-1.1-pro", "flux-1.1-pro-ultra", "flux-kontext-pro",
    "flux-kontext-max", "flux-2-pro", "flux-2-flex", "flux-2-dev",
]  # fmt: skip


async def test_every_model_works_end_to_end_through_generate(fake: FakeCometAPI, tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(png())
    (tmp_path / "b.png").write_bytes(png())

    def images(model: str) -> list[str]:
        count = 1 if "kontext" in model else 2 if "flux-2" in model else 0
        return [arg for name in ("a.png", "b.png")[:count] for arg in ("--image", name)]

    runs = await asyncio.gather(*(
        generate(fake, tmp_path, f"a lighthouse ({model})", "--model", model, *images(model), "--out", model)
        for model in TEN
    ))  # fmt: skip
    for model, run in zip(TEN, runs, strict=True):
        assert run.code == 0, (model, run.stderr)
        [line] = run.stdout.splitlines()
        assert line.startswith(f"{model}/")
    by_model = {create.path.split("/")[-2]: create.json["input"] for create in fake.creates() if create.json}
    assert sorted(by_model) == sorted(TEN)
    for model, sent in by_model.items():
        assert sent["prompt"] == f"a lighthouse ({model})"
        if "flux-2" in model:
            assert len(sent["input_images"]) == 2
            assert all(uri.startswith("data:image/png;base64,") for uri in sent["input_images"])


async def test_flux_2_takes_images_files_and_urls_and_a_resolution(fake: FakeCometAPI, tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(png())
    url = "https://example.com/reference.png"
    run = await generate(
        fake, tmp_path, "the two of them on a bench", "--model", "flux-2-pro", "--image", "a.png", "--image", url,
        "--resolution", "2", "--aspect-ratio", "match_input_image",
    )  # fmt: skip
    assert run.code == 0, run.stderr
    (create,) = fake.creates()
    assert isinstance(create.json, dict)
    sent = create.json["input"]
    assert sent["input_images"][0].startswith("data:image/png;base64,")
    assert sent["input_images"][1] == url
    assert (sent["resolution"], sent["aspect_ratio"]) == ("2 MP", "match_input_image")


async def test_prompt_parameters_work_in_generate_and_an_option_wins(fake: FakeCometAPI, tmp_path: Path) -> None:
    run = await generate(
        fake, tmp_path, "a fox --ar 16:9 --m flux-2-dev --seed 5", "--aspect-ratio", "4:5", "--output-format", "png"
    )
    assert run.code == 0, run.stderr
    assert "note: `--ar 16:9` in the prompt was not used: the aspect_ratio option (`4:5`) wins." in run.stderr
    (create,) = fake.creates()
    assert create.path.endswith("/flux-2-dev/predictions")
    assert isinstance(create.json, dict)
    sent = create.json["input"]
    assert (sent["prompt"], sent["aspect_ratio"], sent["seed"], sent["output_format"]) == ("a fox", "4:5", 5, "png")


async def test_what_a_model_would_refuse_exits_2_and_sends_nothing(fake: FakeCometAPI, tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(png())
    nine = [arg for _ in range(9) for arg in ("--image", "a.png")]
    cases: list[tuple[tuple[str, ...], str]] = [
        (("a fox", "--model", "flux-2-pro", *nine), "flux-2-pro takes up to 8 input image(s), got 9"),
        (("a fox", "--model", "flux-2-dev", *nine[:10]), "flux-2-dev takes up to 4"),
        (("a fox", "--model", "flux-2-dev", "--resolution", "1"), "flux-2-dev does not take `resolution`"),
        (("a fox", "--model", "flux-2-pro", "--safety-tolerance", "6"), "safety_tolerance must be between 1 and 5"),
        (("a fox", "--model", "flux-2-pro", "--aspect-ratio", "21:9"), "flux-2-pro takes aspect_ratio 1:1"),
        (("a fox", "--model", "flux-2-pro", "--width", "1024"), "takes width only with aspect_ratio custom"),
        (("a fox --m flux-2-pro --ar custom --res 2",), "aspect_ratio custom needs width and height"),
        (("a beach --no people",), "no negative prompt"),
        (("a beach --stylize 100",), "`--stylize` is not a parameter I know"),
    ]
    runs = await asyncio.gather(*(generate(fake, tmp_path, *args) for args, _ in cases))
    for (args, reason), run in zip(cases, runs, strict=True):
        assert run.code == 2, (args, run.stderr)
        assert reason in run.stderr, (args, run.stderr)
    assert fake.requests == []


async def test_image_refusals_name_the_image_flag_not_discords_attachments(fake: FakeCometAPI, tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(png())
    cases: list[tuple[tuple[str, ...], str]] = [
        (("make it night", "--model", "flux-kontext-pro"), "flux-kontext-pro edits an image: give one with --image."),
        (
            ("a fox", "--model", "flux-schnell", "--image", "a.png"),
            "flux-schnell makes images from text only; leave out --image, or pick a Kontext or FLUX.2 model.",
        ),
        (
            ("a fox", "--model", "flux-2-pro", "--aspect-ratio", "match_input_image"),
            "--aspect-ratio match_input_image takes the shape of an input image: give one with --image, "
            "or pick another --aspect-ratio.",
        ),
    ]
    runs = await asyncio.gather(*(generate(fake, tmp_path, *args) for args, _ in cases))
    for (args, reason), run in zip(cases, runs, strict=True):
        assert run.code == 2, (args, run.stderr)
        assert f"error: {reason}" in run.stderr, (args, run.stderr)
        assert "attach" not in run.stderr and "`image`" not in run.stderr, run.stderr
    assert fake.requests == []


async def test_the_progress_line_moves_while_a_model_without_a_progress_bar_runs(
    fake: FakeCometAPI, tmp_path: Path
) -> None:
    """FLUX.2 logs no percentage: the poller reports nothing new for its whole run, and the line used to freeze.
    stderr is a terminal here (a pty), as for a person watching."""
    fake.queue_outcome(Outcome(duration=5.5, queue_time=0, logs_style="empty"))
    master, terminal = pty.openpty()
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONPATH": str(REPO),
           "PYTHONDONTWRITEBYTECODE": "1", "COMETAPI_BASE_URL": fake.base_url, "COMETAPI_KEY": KEY}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(REPO / "bot.py"), "generate", "a fox", "--model", "flux-2-dev", "--seed", "3",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=terminal,
    )  # fmt: skip
    os.close(terminal)
    written = bytearray()
    closed = asyncio.Event()

    def readable() -> None:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child's end is closed
            data = b""
        written.extend(data)
        if not data:
            loop.remove_reader(master)
            closed.set()

    loop = asyncio.get_running_loop()
    loop.add_reader(master, readable)
    try:
        async with asyncio.timeout(60):
            await proc.wait()
            await closed.wait()
    finally:
        loop.remove_reader(master)
        os.close(master)
    assert proc.returncode == 0, written.decode()
    frames = written.decode().replace("\r\n", "\n").split("\r\x1b[2K")
    generating = [f for f in frames if f.startswith("flux-2-dev (seed 3): generating ·")]
    # Redrawn while nothing changed: the elapsed time moves, with the model's usual time beside it.
    elapsed = [float(m.group(1)) for f in generating if (m := re.search(r"· ([\d.]+) s \(usually 3–12 s\)", f))]
    assert len(elapsed) == len(generating) >= 2, frames
    assert elapsed == sorted(elapsed) and len(set(elapsed)) == len(elapsed), frames
    assert len(fake.creates()) == 1
