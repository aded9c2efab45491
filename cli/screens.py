"""`python -m cli.screens [--out docs/images]`: draw the README's pictures from the bot's real messages.

Runs the real bot against the fake Discord and the fake CometAPI (cli/sandbox.py), makes one /imagine, and keeps
the message bodies the bot sent: the reply while it shows progress, and the same reply once it holds the images.
Each is drawn as a Discord-like card (cli/card.py) into progress.png and result.png. The images in the result are
the fake CometAPI's test pictures, not a model's; the card (texts, gallery, buttons) is exactly what the bot sent.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import sys
from pathlib import Path

from cli.card import MessageBody, render
from cli.sandbox import sandbox
from fakes.discord_models import StoredMessage

PROMPT = "a red fox in the snow, golden hour --ar 16:9"
MODEL = "flux-dev"


def _body(message: StoredMessage) -> MessageBody:
    return MessageBody(
        content=message.content,
        embeds=copy.deepcopy(message.embeds),
        components=copy.deepcopy(message.components),
        images=[attachment.data for attachment in message.attachments],
        files={attachment.filename: attachment.data for attachment in message.attachments},
    )


async def capture() -> tuple[MessageBody, MessageBody, dict[int, str], str]:
    """The progress and the result of one /imagine, the names of the users it mentions, and the bot's name."""
    async with sandbox(speed=1.0, user="alice") as box:
        handle = await box.discord.slash_command(
            box.guild, box.channel, box.user, "imagine", {"prompt": PROMPT, "model": MODEL, "num_outputs": 4}
        )
        seen: list[MessageBody] = []

        def generating(message: StoredMessage) -> bool:
            # The body is copied when it is seen: the same message is edited on into the result.
            if "%" in message.text and not message.attachments:
                seen.append(_body(message))
                return True
            return False

        await handle.wait_original(generating, timeout=60)
        result = await handle.wait_original(lambda message: bool(message.attachments), timeout=60)
        names = {user_id: user.name for user_id, user in box.discord.users.items()}
        return seen[0], _body(result), names, box.discord.bot.name


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m cli.screens", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"), help="folder for the PNGs")
    args = parser.parse_args(argv)
    progress, result, names, bot_name = asyncio.run(capture())
    args.out.mkdir(parents=True, exist_ok=True)
    for name, body in (("progress", progress), ("result", result)):
        path = args.out / f"{name}.png"
        card = render(body, author=bot_name, names=lambda user_id: names.get(user_id, str(user_id)))
        card.quantize(256).save(path, optimize=True)  # a palette keeps the noisy test pictures small in git
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
