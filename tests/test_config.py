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
        ({**BASE, "COMETAPI_BASE_URL": "http://127.0.0.1:99999"}, "COMETAPI_BASE_URL"),
        ({**BASE, "COMETAPI_BASE_URL": "http://127.0.0.1:abc"}, "COMETAPI_BASE_URL"),
        ({**BASE, "COMETAPI_BASE_URL": "http://[bad"}, "COMETAPI_BASE_URL"),
        ({**BASE, "DISCORD_GATEWAY_URL": "ws://127.0.0.1:99999/gateway"}, "DISCORD_GATEWAY_URL"),
        ({**BASE, "DATABASE_URL": "postgresql://bot:pw@127.0.0.1:99999/bot"}, "DATABASE_URL"),
        ({**BASE, "DATABASE_URL": "postgresql://bot:pw@[::1/bot"}, "DATABASE_URL"),
        # A model without known image sizes can't be booked per megapixel (it would cost nothing).
        (
            {**BASE, "ALLOW_UNKNOWN_MODELS": "true", "MODEL_PRICES": "someone/their-model=in_mp:0.06,out_mp:0.06"},
            "MODEL_PRICES",
        ),
    ],
)
def test_bad_values_name_the_variable(env, variable):
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert info.value.variable == variable
    assert variable in str(info.value)


FLOAT_SETTINGS = (
    "COMETAPI_CONNECT_TIMEOUT",
    "COMETAPI_READ_TIMEOUT",
    "PREDICTION_DEADLINE",
    "USER_COOLDOWN",
    "MAX_DOWNLOAD_MB",
    "DOWNLOAD_TIMEOUT",
    "MAX_INPUT_IMAGE_MB",
)


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity", "nan", "NaN"])
@pytest.mark.parametrize("variable", FLOAT_SETTINGS)
def test_float_settings_must_be_finite(variable, value):
    # nan passes every range check (USER_COOLDOWN=nan turned the cooldown off); inf has no end.
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, variable: value})
    assert info.value.variable == variable
    assert "finite" in str(info.value)


def test_finite_float_settings_are_read():
    settings = load_settings({**BASE, "PREDICTION_DEADLINE": "1e3", "USER_COOLDOWN": "0", "MAX_DOWNLOAD_MB": "1.5"})
    assert settings.prediction_deadline == 1000.0
    assert settings.user_cooldown == 0.0
    assert settings.max_download_bytes == int(1.5 * 1024 * 1024)


@pytest.mark.parametrize("variable", ["MAX_DOWNLOAD_MB", "MAX_INPUT_IMAGE_MB"])
def test_sizes_too_large_to_count_in_bytes_are_refused(variable):
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, variable: "1e308"})  # finite, but times 2**20 it is not
    assert info.value.variable == variable


@pytest.mark.parametrize("url", ["sqlite://data/bot.db", "sqlite:///", "sqlite:///data/", "sqlite:///d.db?mode=ro"])
def test_sqlite_urls_that_name_no_file_are_refused(url):
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, "DATABASE_URL": url})
    assert info.value.variable == "DATABASE_URL"
    assert repr(url) in str(info.value)


@pytest.mark.parametrize("url", ["sqlite:///data/bot.db", "sqlite:////srv/bot.db", "sqlite://:memory:"])
def test_sqlite_urls_that_name_a_file_are_read(url):
    assert load_settings({**BASE, "DATABASE_URL": url}).database_url == url


@pytest.mark.parametrize(
    ("env", "accepted"),
    [
        ({"DEFAULT_MODEL": "black-forest-labs/flux-dev"}, True),
        ({"DEFAULT_MODEL": "flux-dev"}, True),  # a short name, as /imagine's model option takes
        ({"DEFAULT_MODEL": "flux-9000"}, False),
        ({"DEFAULT_MODEL": "someone/their-model"}, False),  # not in the catalogue, unknown models not allowed
        ({"DEFAULT_MODEL": "someone/their-model", "ALLOW_UNKNOWN_MODELS": "true"}, True),
        ({"DEFAULT_MODEL": "flux-9000", "ALLOW_UNKNOWN_MODELS": "true"}, False),  # not owner/name
        ({"DEFAULT_MODEL": "../../account", "ALLOW_UNKNOWN_MODELS": "true"}, False),
    ],
)
def test_default_model_must_be_usable(env, accepted):
    if accepted:
        assert load_settings({**BASE, **env}).default_model == env["DEFAULT_MODEL"]
        return
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, **env})
    assert info.value.variable == "DEFAULT_MODEL"
    assert repr(env["DEFAULT_MODEL"]) in str(info.value)


def test_the_blocked_words_file_is_one_phrase_a_line_with_comments(tmp_path):
    path = tmp_path / "blocked.txt"
    path.write_text("# the operator's list\n\n  Taylor   Swift \nnude\n🍆\n", encoding="utf-8")
    settings = load_settings({**BASE, "BLOCKED_WORDS_FILE": str(path)})
    assert settings.blocked_words == ("Taylor Swift", "nude", "🍆")
    assert "nude" not in repr(settings)
    assert load_settings(BASE).blocked_words == ()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "cannot read"),  # no such file
        ("a folder", "cannot read"),
        (b"nud\xe9\n", "not UTF-8"),
        ("nude\n---\n", "line 2: '---' is only punctuation"),
    ],
)
def test_a_blocked_words_file_that_cannot_be_used_is_refused(tmp_path, content, fragment):
    path = tmp_path / "blocked.txt"
    if content == "a folder":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, "BLOCKED_WORDS_FILE": str(path)})
    assert info.value.variable == "BLOCKED_WORDS_FILE"
    assert str(path) in str(info.value)
    assert fragment in str(info.value)


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


def test_how_long_input_images_are_kept_and_the_largest_inline_request_are_settings():
    settings = load_settings(BASE)
    assert settings.input_image_retention_seconds == 3 * 86_400
    assert settings.input_image_store_bytes == 1024 * 1024 * 1024
    assert settings.max_request_bytes == 50 * 1024 * 1024
    chosen = load_settings(
        {**BASE, "INPUT_IMAGE_RETENTION_DAYS": "0.5", "INPUT_IMAGE_STORE_MB": "0", "COMETAPI_MAX_REQUEST_MB": "8"}
    )
    assert chosen.input_image_retention_seconds == 43_200
    assert chosen.input_image_store_bytes is None  # 0: no cap
    assert chosen.max_request_bytes == 8 * 1024 * 1024
    for name, bad in (
        ("INPUT_IMAGE_RETENTION_DAYS", "-1"),
        ("INPUT_IMAGE_STORE_MB", "lots"),
        ("COMETAPI_MAX_REQUEST_MB", "0"),
    ):
        with pytest.raises(ConfigError, match=name):
            load_settings({**BASE, name: bad})


def test_the_memory_for_images_in_flight_is_a_setting_handed_to_the_downloads():
    assert load_settings(BASE).image_memory_bytes == 32 * 1024 * 1024
    chosen = load_settings({**BASE, "IMAGE_MEMORY_MB": "0.5"})
    assert chosen.image_memory_bytes == 512 * 1024
    assert chosen.api().image_memory_bytes == 512 * 1024  # what the prediction service's downloads are built with
    assert load_settings({**BASE, "IMAGE_MEMORY_MB": "0"}).image_memory_bytes == 0  # every image on disk
    for bad in ("-1", "lots", "inf"):
        with pytest.raises(ConfigError, match="IMAGE_MEMORY_MB"):
            load_settings({**BASE, "IMAGE_MEMORY_MB": bad})


@pytest.mark.parametrize("password", ["Secr3t/Pass", "Secr3t#Pass", "Secr3t?Pass"])
def test_a_password_that_breaks_the_database_url_is_not_shown(password):
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, "DATABASE_URL": f"postgresql://bot:{password}@127.0.0.1:5999/bot"})
    assert info.value.variable == "DATABASE_URL"
    assert "Secr3t" not in str(info.value) and "Pass" not in str(info.value)
    assert "URL-encode" in str(info.value)
