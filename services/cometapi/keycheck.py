"""The start-up check of COMETAPI_KEY, with one request that costs nothing.

It reads a prediction that does not exist: 404 means the key was accepted, 401/403 that it was refused. A
refused key then stops the bot before it logs in, instead of being found by a member's first /imagine (which
says so in public). A CometAPI that cannot be reached now may be back by the first job: only a warning.
"""

from __future__ import annotations

import aiohttp

from services.cometapi.client import CometClient, RetryPolicy
from services.cometapi.connection import Connection
from services.errors import ApiError, AuthError, ConfigError

PROBE_ID = "flux-bot-start-up-key-check"  # no prediction has this id: real ones are 26 lowercase letters/digits
READ_TIMEOUT = 15.0  # start-up waits this long at most for the answer, whatever COMETAPI_READ_TIMEOUT says


async def check_key(api: Connection) -> str | None:
    """Raise ConfigError naming COMETAPI_KEY when the API refuses it; return a warning when it could not be
    checked (the API unreachable, or an answer that says nothing about the key); None when it was accepted."""
    async with aiohttp.ClientSession() as session:
        client = CometClient(
            session,
            base_url=api.base_url,
            api_key=api.api_key,
            connect_timeout=api.connect_timeout,
            read_timeout=min(api.read_timeout, READ_TIMEOUT),
            retry=RetryPolicy(attempts=1),  # one try: a retry loop would hold start-up for a minute
        )
        try:
            await client.get(PROBE_ID)
        except AuthError as exc:
            raise ConfigError(
                "COMETAPI_KEY",
                f"refused by CometAPI at {api.base_url} (HTTP {exc.status}); check the key",
            ) from None
        except ApiError as exc:
            if exc.status == 404:
                return None  # the key was accepted and the prediction, as expected, not found
            return f"COMETAPI_KEY not checked at start-up ({api.base_url}): {exc} Starting anyway."
    return None
