"""The API client's chat and moderation calls (services/cometapi/client.py, words.py) against the fake CometAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from cli.harness import KEY  # the key of the `fake` fixture's API
from fakes.cometapi import FakeCometAPI
from services.cometapi.client import CometClient, RetryPolicy
from services.errors import ApiError, AuthError, Unavailable
from services.secrets import Secret

USER: list[dict[str, object]] = [{"role": "user", "content": "a fox"}]


@pytest.fixture
async def client(fake: FakeCometAPI) -> AsyncIterator[CometClient]:
    async with aiohttp.ClientSession() as session:
        yield CometClient(
            session, base_url=fake.base_url, api_key=Secret(KEY), retry=RetryPolicy(attempts=3, base_delay=0.01)
        )


async def test_chat_returns_the_text_and_the_tokens(fake: FakeCometAPI, client: CometClient) -> None:
    fake.words.queue_reply("  a fox at dawn  ", usage=(12, 7))
    answer = await client.chat("gpt-5-mini", list(USER), max_tokens=100)
    assert (answer.content, answer.prompt_tokens, answer.completion_tokens, answer.tokens) == (
        "a fox at dawn",
        12,
        7,
        19,
    )
    assert (fake.requests_for("chat")[0].json or {})["max_tokens"] == 100


async def test_chat_is_not_repeated_after_a_server_error_but_is_after_429(
    fake: FakeCometAPI, client: CometClient
) -> None:
    fake.inject("chat", status=500)
    with pytest.raises(Unavailable):
        await client.chat("gpt-5-mini", list(USER), max_tokens=10)
    assert len(fake.requests_for("chat")) == 1  # it may have been paid for
    fake.inject("chat", status=429, headers={"Retry-After": "0"})
    assert (await client.chat("gpt-5-mini", list(USER), max_tokens=10)).content
    fake.api_key = "other"
    with pytest.raises(AuthError):
        await client.chat("gpt-5-mini", list(USER), max_tokens=10)


async def test_chat_answer_without_a_message_is_an_error(fake: FakeCometAPI, client: CometClient) -> None:
    fake.inject("chat", status=200, json={"choices": []})
    with pytest.raises(ApiError):
        await client.chat("gpt-5-mini", list(USER), max_tokens=10)


async def test_moderate_says_flagged_and_retries_like_a_get(fake: FakeCometAPI, client: CometClient) -> None:
    part: dict[str, object] = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA=="}}
    assert not (await client.moderate([part])).flagged
    fake.words.queue_flag({"sexual": True})
    fake.inject("moderation", status=503)
    checked = await client.moderate([part])
    assert checked.flagged and checked.categories == ("sexual",)
    assert (fake.requests_for("moderation")[-1].json or {})["model"] == "omni-moderation-latest"
