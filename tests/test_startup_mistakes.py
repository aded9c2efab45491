"""Start-up mistakes, through the real `python bot.py`: one line on stderr naming the setting, exit status 2,
no traceback, and nothing sent to Discord.

The fake Discord refuses the bot's token. A check that ran only after login would therefore show up as a
request to the fake (and as the DISCORD_TOKEN line instead of the expected one), never as a hang.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from cli.harness import KEY, TOKEN
from fakes.cometapi import FakeCometAPI
from services.errors import ConfigError
from services.store.preflight import open_checked
from tests.campaign import run_bot
from tests.conftest import cannot_test, connect_postgres_or_skip, postgres_test_url

PASSWORD = "pw-that-must-never-be-printed"


def assert_one_line(code: int, out: str, err: str, variable: str, *fragments: str) -> str:
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    [line] = lines
    assert line.startswith(f"error: {variable}: "), line
    for fragment in fragments:
        assert fragment in line, line
    assert "Traceback" not in out + err
    assert TOKEN not in out + err
    assert KEY not in out + err
    return line


# --- settings: refused by load_settings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("DATABASE_URL", "sqlite://data/bot.db", "(no host)"),
        ("DEFAULT_MODEL", "flux-9000", "not a known model"),
        ("PREDICTION_DEADLINE", "inf", "finite"),
        ("USER_COOLDOWN", "nan", "finite"),
        ("MODEL_PRICES", "flux-dev=1e400", "finite"),  # Decimal takes it as finite; as a float it is inf
        ("MODEL_PRICES", "flux-dev=-0.01", "from 0"),
    ],
)
async def test_bad_setting_is_one_line_before_discord(refusing_discord, tmp_path, variable, value, fragment):
    code, out, err = await run_bot(refusing_discord, tmp_path, **{variable: value})
    assert_one_line(code, out, err, variable, fragment, repr(value))
    assert refusing_discord.requests == []


async def test_a_mistake_in_the_models_file_is_one_line_before_discord(refusing_discord, tmp_path):
    models = tmp_path / "models.local.toml"
    models.write_text('[models."black-forest-labs/flux-2-pro".params]\nsafety_tolerance = { type = "int", min = 1, '
                      'max = 5, default = 9 }\n')  # fmt: skip
    code, out, err = await run_bot(refusing_discord, tmp_path, MODELS_FILE=str(models))
    assert_one_line(code, out, err, "MODELS_FILE", str(models), ".params.safety_tolerance.default", "at most 5")
    assert refusing_discord.requests == []


@pytest.mark.parametrize("how", ["missing", "a folder"])
async def test_a_blocked_words_file_that_cannot_be_read_is_one_line_before_discord(refusing_discord, tmp_path, how):
    path = tmp_path / "blocked.txt"
    if how == "a folder":
        path.mkdir()
    code, out, err = await run_bot(refusing_discord, tmp_path, BLOCKED_WORDS_FILE=str(path))
    assert_one_line(code, out, err, "BLOCKED_WORDS_FILE", str(path), "cannot read")
    assert refusing_discord.requests == []


async def test_a_price_for_a_model_the_catalogue_lacks(refusing_discord, tmp_path):
    code, out, err = await run_bot(refusing_discord, tmp_path, MODEL_PRICES="flux-dev=0.02 flux-shnell=0.5")
    assert_one_line(
        code, out, err, "MODEL_PRICES", "'flux-shnell' is not a model in the catalogue", "did you mean flux-schnell?",
        "flux-kontext-pro, flux-pro, flux-schnell",
    )  # fmt: skip
    assert refusing_discord.requests == []


SEEDLESS = 'remove_params = ["seed"]\n'


@pytest.mark.parametrize(
    ("toml", "env", "variable", "fragments"),
    [
        pytest.param(
            f'[models."black-forest-labs/flux-dev"]\nlabel = "{"FLUX dev " * 12}"\n', {}, "MODELS_FILE",
            (".label: the label is 108 characters long", "at most 100"), id="label-too-long",
        ),
        pytest.param(
            f'[models."acme/{"long" * 25}"]\nextends = "black-forest-labs/flux-dev"\n', {}, "MODELS_FILE",
            ("the model id is 105 characters long", "at most 100"), id="model-id-too-long",
        ),
        pytest.param(
            '[models."black-forest-labs/flux-dev".params]\n'
            f'aspect_ratio = {{ type = "choice", values = ["1:1", "{"16:9 " * 21}"] }}\n', {}, "MODELS_FILE",
            (".params.aspect_ratio.values", "105 characters long", "at most 100"), id="choice-too-long",
        ),
        pytest.param(
            f'[models."black-forest-labs/flux-kontext-pro"]\n{SEEDLESS}', {}, "MODELS_FILE",
            ("flux-kontext-pro, the default model for edits, takes no `seed` input",), id="seedless-edit-default",
        ),
        pytest.param(
            f'[models."black-forest-labs/flux-dev"]\n{SEEDLESS}', {}, "MODELS_FILE",
            ("flux-dev, the default model for variations, takes no `seed` input",), id="seedless-variation-default",
        ),
        pytest.param(
            f'[models."black-forest-labs/flux-schnell"]\n{SEEDLESS}', {}, "MODELS_FILE",
            ("flux-schnell, the default model (DEFAULT_MODEL), takes no `seed` input",), id="seedless-builtin-default",
        ),
        pytest.param(
            f'[models."acme/plain"]\nextends = "black-forest-labs/flux-schnell"\nlabel = "Plain"\n{SEEDLESS}',
            {"DEFAULT_MODEL": "acme/plain"}, "DEFAULT_MODEL", ("plain takes no `seed` input",), id="seedless-default",
        ),
    ],
)  # fmt: skip
async def test_a_models_file_discord_or_the_api_would_refuse(
    refusing_discord, tmp_path, toml, env, variable, fragments
):
    models = tmp_path / "models.local.toml"
    models.write_text(toml)
    code, out, err = await run_bot(refusing_discord, tmp_path, MODELS_FILE=str(models), **env)
    assert_one_line(code, out, err, variable, *fragments)
    assert refusing_discord.requests == []


# --- SQLite: the folder cannot hold the database ------------------------------------------------------------


async def test_sqlite_path_under_a_file(refusing_discord, tmp_path):
    (tmp_path / "data").write_text("a file where the data folder should be")
    url = f"sqlite:///{tmp_path}/data/db/bot.db"
    code, out, err = await run_bot(refusing_discord, tmp_path, DATABASE_URL=url)
    assert_one_line(code, out, err, "DATABASE_URL", f"{tmp_path / 'data'} is a file, not a folder")
    assert refusing_discord.requests == []


@contextlib.contextmanager
def read_only(folder: Path, how: str) -> Iterator[tuple[str, ...]]:
    """A command prefix under which `folder` cannot be written, by mode bits or by a read-only mount.

    mode: chmod 555. Root writes through mode bits, so as root the bot runs with the capabilities that let it
    (DAC override, file owner) dropped, as an unprivileged user would be.
    mount: the bot runs in a private mount namespace where `folder` is bind-mounted read-only, as a Docker
    volume mounted with `:ro` is; that stops root too.
    When this machine allows neither trick, the test is skipped and says why (in CI it fails instead).
    """
    if how == "mode":
        drop = ("capsh", "--drop=cap_dac_override,cap_dac_read_search,cap_fowner", "--", "-c", 'exec "$0" "$@"')
        prefix: tuple[str, ...] = drop if os.geteuid() == 0 else ()
        expected = "Permission denied"
    else:
        script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
        user = () if os.geteuid() == 0 else ("--user", "--map-root-user")
        prefix = ("unshare", *user, "--mount", "--propagation", "private", "sh", "-c", script, str(folder))
        expected = "Read-only file system"
    folder.chmod(0o555 if how == "mode" else 0o755)
    try:
        try:
            probe = subprocess.run(
                [*prefix, "touch", str(folder / "probe")], capture_output=True, text=True, check=False
            )
        except FileNotFoundError as exc:
            cannot_test(f"cannot make a folder read-only by {how} here: {exc}")
        if probe.returncode == 0 or expected not in probe.stderr:
            cannot_test(f"cannot make a folder read-only by {how} here: {probe.stderr.strip()}")
        yield prefix
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize(
    ("how", "reason"),
    [("mode", "permission denied for this user"), ("mount", "it is on a read-only file system")],
)
async def test_sqlite_read_only_data_folder(refusing_discord, tmp_path, how, reason):
    data = tmp_path / "data"
    data.mkdir()
    with read_only(data, how) as prefix:
        url = f"sqlite:///{data}/bot.db"
        code, out, err = await run_bot(refusing_discord, tmp_path, prefix=prefix, DATABASE_URL=url)
    assert_one_line(code, out, err, "DATABASE_URL", f"cannot write in the folder {data}: {reason}")
    assert refusing_discord.requests == []
    assert list(data.iterdir()) == []


# --- PostgreSQL: not listening, database missing, role unknown -----------------------------------------------


def postgres_url(*, user: str | None = None, database: str | None = None) -> str:
    """The test server's URL with another user, database or port, and always a password (to check it is hidden)."""
    parts = urlsplit(postgres_test_url())
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user or parts.username or 'postgres'}:{PASSWORD}@{host}:{parts.port or 5432}"
    return urlunsplit((parts.scheme, netloc, f"/{database}" if database else parts.path, "", ""))


async def test_postgres_not_listening(refusing_discord, tmp_path):
    # A port bound but not listening refuses connections, and nothing else can take it meanwhile.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed.getsockname()[1]}/bot"
        code, out, err = await run_bot(refusing_discord, tmp_path, DATABASE_URL=url)
    assert_one_line(code, out, err, "DATABASE_URL", "nothing is listening", "connection refused")
    assert PASSWORD not in out + err
    assert refusing_discord.requests == []


@pytest.mark.parametrize(
    ("kind", "fragment"),
    [("database", "the database is missing"), ("user", "does not accept the role")],
)
async def test_postgres_refuses(refusing_discord, tmp_path, kind, fragment):
    conn = await connect_postgres_or_skip()  # the server must be there for it to refuse the name
    await conn.close()
    name = f"flux_missing_{uuid.uuid4().hex[:10]}"
    code, out, err = await run_bot(refusing_discord, tmp_path, DATABASE_URL=postgres_url(**{kind: name}))
    assert_one_line(code, out, err, "DATABASE_URL", fragment, name)
    assert PASSWORD not in out + err
    assert refusing_discord.requests == []


# --- Discord refuses the token ---------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [(), ("sync",)], ids=["run", "sync"])
async def test_rejected_token_exits_2_with_one_line(refusing_discord, tmp_path, args):
    code, out, err = await run_bot(refusing_discord, tmp_path, *args)
    assert_one_line(code, out, err, "DISCORD_TOKEN", "refused by Discord")
    assert refusing_discord.requests_matching("GET", r"/users/@me$")[0].status == 401


# --- Discord out of reach: one line, not aiohttp's traceback ---------------------------------------------------


@pytest.mark.parametrize("args", [(), ("sync",)], ids=["run", "sync"])
async def test_discord_refusing_connections(refusing_discord, tmp_path, args):
    with socket.socket() as closed:  # bound but not listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        base = f"http://127.0.0.1:{port}/api/v10"
        code, out, err = await run_bot(refusing_discord, tmp_path, *args, DISCORD_API_BASE_URL=base)
    assert_one_line(
        code, out, err, "DISCORD_API_BASE_URL", f"cannot reach Discord at {base}: cannot connect to 127.0.0.1:{port} "
        "(connection refused); check the network, a proxy or this URL",
    )  # fmt: skip


async def test_discord_name_that_does_not_resolve(refusing_discord, tmp_path):
    base = "http://discord.invalid/api/v10"  # .invalid never resolves (RFC 2606)
    code, out, err = await run_bot(refusing_discord, tmp_path, DISCORD_API_BASE_URL=base)
    assert_one_line(code, out, err, "DISCORD_API_BASE_URL", "the name discord.invalid does not resolve")


async def test_discord_api_base_url_that_is_not_discords_api(refusing_discord, tmp_path):
    base = refusing_discord.api_base_url.replace("/api/v10", "/not-the-api/v10")  # a server, but not Discord's API
    code, out, err = await run_bot(refusing_discord, tmp_path, DISCORD_API_BASE_URL=base)
    assert_one_line(code, out, err, "DISCORD_API_BASE_URL", f"cannot reach Discord at {base}", "HTTP 404")


# --- COMETAPI_KEY: checked before login with a request that costs nothing ----------------------------------------


async def test_a_refused_cometapi_key_is_one_line_before_discord(refusing_discord, tmp_path):
    async with FakeCometAPI(api_key="the-key-the-account-really-has") as comet:
        code, out, err = await run_bot(refusing_discord, tmp_path, COMETAPI_BASE_URL=comet.base_url)
    assert_one_line(code, out, err, "COMETAPI_KEY", f"refused by CometAPI at {comet.base_url} (HTTP 401)")
    assert [(r.method, r.route) for r in comet.requests] == [("GET", "get")]  # a read: nothing is created or paid
    assert comet.predictions == {}
    assert refusing_discord.requests == []


async def test_an_accepted_cometapi_key_goes_on_to_discord(refusing_discord, tmp_path):
    async with FakeCometAPI(api_key=KEY) as comet:
        code, out, err = await run_bot(refusing_discord, tmp_path, COMETAPI_BASE_URL=comet.base_url)
    assert_one_line(code, out, err, "DISCORD_TOKEN", "refused by Discord")  # got as far as logging in
    assert [(r.method, r.route) for r in comet.requests] == [("GET", "get")]
    assert comet.predictions == {}
    assert "COMETAPI_KEY" not in out
    # A start with nothing wrong warns of nothing (discord.py's warnings about voice libraries the bot never uses
    # included): an operator's first warning is about their set-up.
    assert [line for line in out.splitlines() if " WARNING " in line] == []


async def test_an_unreachable_cometapi_is_a_warning_not_an_exit(refusing_discord, tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{closed.getsockname()[1]}"
        code, out, err = await run_bot(refusing_discord, tmp_path, COMETAPI_BASE_URL=base)
    assert_one_line(code, out, err, "DISCORD_TOKEN", "refused by Discord")  # it went on to log in
    [warning] = [line for line in out.splitlines() if "COMETAPI_KEY" in line]
    assert f"WARNING bot: COMETAPI_KEY not checked at start-up ({base}): Could not connect" in warning


async def test_postgres_message_never_holds_the_password():
    """Even when the server's own message would: here the password is also the missing database's name."""
    conn = await connect_postgres_or_skip()
    await conn.close()
    name = f"flux_missing_{uuid.uuid4().hex[:10]}"
    url = postgres_url(database=name).replace(PASSWORD, name)
    with pytest.raises(ConfigError) as info:
        await open_checked(url)
    assert info.value.variable == "DATABASE_URL"
    assert "the database is missing" in str(info.value)
    assert name not in str(info.value)
