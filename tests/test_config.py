import subprocess
import sys
from pathlib import Path

import pytest

from services.config import load_settings
from services.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
BASE = {"COMETAPI_KEY": "ck-test-0123456789", "DISCORD_TOKEN": "dt-test-0123456789"}


def test_defaults_and_secret_not_in_repr():
    settings = load_settings(BASE)
    assert settings.cometapi_base_url == "https://api.cometapi.com"
    assert settings.database_url == "sqlite:///data/bot.db"
    assert settings.cometapi_key.reveal() == BASE["COMETAPI_KEY"]
    assert BASE["COMETAPI_KEY"] not in repr(settings)
    assert BASE["DISCORD_TOKEN"] not in str(settings)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DISCORD_TOKEN": "x" * 20}, "COMETAPI_KEY"),
        ({"COMETAPI_KEY": "k" * 20}, "DISCORD_TOKEN"),
        ({**BASE, "COMETAPI_BASE_URL": "ftp://example.com"}, "COMETAPI_BASE_URL"),
        ({**BASE, "DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({**BASE, "LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({**BASE, "MAX_CONCURRENT_PREDICTIONS": "many"}, "MAX_CONCURRENT_PREDICTIONS"),
        ({**BASE, "MAX_CONCURRENT_PREDICTIONS": "0"}, "MAX_CONCURRENT_PREDICTIONS"),
        ({**BASE, "DISCORD_GATEWAY_URL": "http://x"}, "DISCORD_GATEWAY_URL"),
        ({**BASE, "SHARD_IDS": "0,1"}, "SHARD_IDS"),
        ({**BASE, "SHARD_COUNT": "2", "SHARD_IDS": "0,2"}, "SHARD_IDS"),
        ({**BASE, "ALLOW_UNKNOWN_MODELS": "maybe"}, "ALLOW_UNKNOWN_MODELS"),
        ({**BASE, "COMETAPI_KEY": "two words"}, "COMETAPI_KEY"),
    ],
)
def test_bad_values_name_the_variable(env, variable):
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert info.value.variable == variable
    assert variable in str(info.value)


def test_generate_needs_no_discord_token():
    settings = load_settings({"COMETAPI_KEY": "k" * 20}, require_discord=False)
    assert settings.discord_token is None


def test_missing_key_exits_2_with_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bot.py"), "generate", "a cat"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "COMETAPI_KEY" in lines[0]
    assert "Traceback" not in proc.stderr
