"""Entry point.

python bot.py                      run the Discord bot
python bot.py generate PROMPT ...  one prediction without Discord (see --help)
"""

from __future__ import annotations

import sys

from cli import generate, run


def main(argv: list[str]) -> int:
    if argv and argv[0] == "generate":
        return generate.main(argv[1:])
    return run.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
