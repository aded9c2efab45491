"""`python bot.py`: run the Discord bot."""

from __future__ import annotations

import sys

from services.config import load_settings
from services.errors import ConfigError


def main(argv: list[str]) -> int:
    try:
        load_settings(require_discord=True)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("The Discord side of the bot is not built yet; try `python bot.py generate --help`.", file=sys.stderr)
    return 1
