"""Metrics and health: the opt-in METRICS_PORT serves Prometheus text (read back with prometheus_client's own parser)
and /healthz; a port that cannot be listened on is a start-up mistake; logs as JSON lines on request."""

from __future__ import annotations

import io
import json
import logging
import socket

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from cli.harness import KEY, World
from fakes.cometapi import Outcome
from services.config import configure_logging
from tests.campaign import run_bot
from tests.conftest import connect_postgres_or_skip, postgres_schema, postgres_test_url
from tests.helpers import imagine, setup_guild, until


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status, await response.text()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, by name and labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_count_jobs_spend_latencies_errors_and_429s(world):
    guild, channel, alice = setup_guild(world, "alice")
    port = free_port()
    world.comet.inject("get", status=503)  # one poll fails and is retried
    world.comet.queue_outcome(Outcome(duration=0.3))
    world.discord.inject_rate_limit("PATCH", r"/messages/", retry_after=0.1)  # Discord answers one edit with 429
    async with world.bot(METRICS_PORT=str(port)):
        assert await get(port, "/healthz") == (200, "ok\n")
        handle = await imagine(world, guild, channel, alice, prompt="a lighthouse", num_outputs=2)
        await handle.wait_original(lambda m: len(m.attachments) == 2, timeout=10)
        succeeded = ("flux_jobs_total", (("model", "flux-schnell"), ("status", "succeeded")))

        async def scraped() -> (
            dict[tuple[str, tuple[tuple[str, str], ...]], float] | None
        ):  # the job is counted just after its images are posted
            status, text = await get(port, "/metrics")
            assert status == 200
            found = samples(text)
            return found if succeeded in found else None

        found = await until(scraped, timeout=5, what="the job counted as succeeded")
    schnell = (("model", "flux-schnell"),)
    assert found[("flux_jobs_total", (("model", "flux-schnell"), ("status", "admitted")))] == 1
    assert found[("flux_jobs_total", (("model", "flux-schnell"), ("status", "succeeded")))] == 1
    assert found[("flux_estimated_spend_usd_total", schnell)] == 0.006
    assert found[("flux_prediction_seconds_count", schnell)] == 1
    assert found[("flux_delivery_seconds_count", schnell)] == 1
    assert found[("flux_cometapi_errors_total", (("kind", "server_error"),))] == 1
    assert found[("flux_discord_rate_limited_total", ())] >= 1
    assert found[("flux_queue_depth", ())] == 0
    assert ("flux_jobs_in_flight", ()) in found
    assert found[("flux_asyncio_tasks", ())] >= 1  # at least the metrics server's own
    assert found[("flux_event_loop_lag_seconds", ())] >= 0
    assert found[("flux_image_memory_bytes", ())] == 0  # the delivered images were given back
    assert found[("flux_images_spilled", ())] == 0  # two small images fit the default budget


async def test_forty_member_chosen_model_names_make_no_series_beyond_other(world):
    """Where unknown models are allowed, members choose the names: they are all counted as `other`."""
    guild, channel, alice = setup_guild(world, "alice")
    port = free_port()
    names = [f"member{n}/pick-{n}" for n in range(40)]
    async with world.bot(METRICS_PORT=str(port), ALLOW_UNKNOWN_MODELS="true", MAX_JOBS_PER_USER="40"):
        _, text = await get(port, "/metrics")
        before = set(samples(text))
        handles = [await imagine(world, guild, channel, alice, prompt="a fox", model=name) for name in names]
        for handle in handles:  # the fake API knows none of them: each job fails (counted before it is shown)
            await handle.wait_original(lambda m: "⚠️" in m.text, timeout=20)
        _, text = await get(port, "/metrics")
    found = samples(text)
    assert len(world.comet.creates()) == len(names)  # they did reach the API, by those names
    # One series per metric and label set (a counter's _total and _created samples are one series).
    series = {(name.removesuffix("_total").removesuffix("_created"), labels) for name, labels in set(found) - before}
    assert sorted((name, labels) for name, labels in series if "model" in dict(labels)) == [
        ("flux_estimated_spend_usd", (("model", "other"),)),
        ("flux_jobs", (("model", "other"), ("status", "admitted"))),
        ("flux_jobs", (("model", "other"), ("status", "failed"))),
    ]
    assert found[("flux_jobs_total", (("model", "other"), ("status", "admitted")))] == len(names)
    assert found[("flux_jobs_total", (("model", "other"), ("status", "failed")))] == len(names)


async def test_healthz_is_503_when_the_database_does_not_answer(tmp_path, discord_fake, comet):
    admin = await connect_postgres_or_skip()
    port = free_port()
    try:
        async with postgres_schema() as schema:
            world = World(discord_fake, comet, f"{postgres_test_url()}?search_path={schema}")
            async with world.bot(METRICS_PORT=str(port)):
                assert (await get(port, "/healthz"))[0] == 200
                await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
                status, reason = await get(port, "/healthz")
                assert (status, reason.strip()) == (503, "the database does not answer (UndefinedTableError)")
    finally:
        await admin.close()


async def test_healthz_is_503_naming_the_gateway_shard_that_is_down(world):
    port = free_port()
    async with world.bot(METRICS_PORT=str(port), SHARD_COUNT="2"):
        await world.discord.wait_for_gateway(shard_ids=[0, 1])
        assert await get(port, "/healthz") == (200, "ok\n")
        # Shard 1 loses its connection and cannot get back (Discord refuses it); shard 0 stays connected.
        world.discord.gateway_down = True
        assert await world.discord.drop_gateway(shard_id=1) == 1

        async def unhealthy() -> tuple[int, str] | None:
            answer = await get(port, "/healthz")
            return answer if answer[0] != 200 else None

        status, reason = await until(unhealthy, timeout=10, what="/healthz to notice the shard is down")
        assert (status, reason) == (503, "gateway shard(s) [1] disconnected\n")
        assert 0 in world.discord.gateway_sessions and world.discord.gateway_sessions[0].live
        # Back: healthy again once the shard has reconnected (after discord.py's backoff).
        world.discord.gateway_down = False
        await world.discord.wait_for_gateway(shard_ids=[1], timeout=60)

        async def healthy() -> bool:
            return await get(port, "/healthz") == (200, "ok\n")

        await until(healthy, timeout=10, what="/healthz healthy again")


async def test_a_metrics_port_in_use_is_one_line_and_exit_2(refusing_discord, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = await run_bot(refusing_discord, tmp_path, METRICS_PORT=str(port))
    assert code == 2, (out, err)
    assert err.strip().splitlines() == [
        f"error: METRICS_PORT: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    assert refusing_discord.requests == []  # found before login


def test_json_log_lines_carry_the_message_and_traceback_with_secrets_scrubbed():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("INFO", [KEY], stream=stream, log_format="json")
        logging.getLogger("bot").info("job %s for key %s", "j1", KEY)
        try:
            raise RuntimeError(f"boom {KEY}")
        except RuntimeError:
            logging.getLogger("runner").exception("crashed")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (first["level"], first["logger"], first["message"]) == ("INFO", "bot", "job j1 for key [redacted]")
    assert second["message"] == "crashed"
    assert "RuntimeError: boom [redacted]" in second["exception"]
    assert KEY not in stream.getvalue()
