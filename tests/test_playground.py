"""`python -m cli.playground`: the whole bot with no keys, driven by commands on stdin, as a person would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SESSION = """imagine a red fox --ar 16:9
press 1 Reroll
react 1 🔄
press 1 nope
show
quit
"""


def blocks(out: str) -> list[str]:
    """The output cut at each echoed command: the text printed for each one."""
    return out.split("\n> ")[1:]


def test_imagine_a_button_and_a_reaction_from_the_terminal(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "cli.playground", "--speed", "0.02", "--save", str(tmp_path / "images")],
        input=SESSION, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    imagine, press, react, bad, show, _quit = blocks(result.stdout)
    assert imagine.startswith("imagine a red fox")
    assert "[1] FLUX" in imagine and " · 16:9 · " in imagine and "image: flux-" in imagine
    assert "[Reroll]" in imagine
    # the button made a second result, the reaction a third; each one an image
    assert "[2] FLUX" in press and "Reroll of" in press and "image: flux-" in press
    assert "reactions: 🔄 1" in react and "[3] FLUX" in react and "image: flux-" in react.split("[3] FLUX")[1]
    assert "error: message has no button 'nope'" in bad
    assert show.count("image: flux-") == 3
    assert len(list((tmp_path / "images").iterdir())) == 3
    assert "Traceback" not in result.stdout + result.stderr
