"""`python -m cli.playground`: try the whole bot with no keys, from a prompt in the terminal.

Starts the fake Discord, the fake CometAPI and the real bot wired to them (cli/sandbox.py), then reads commands
from stdin and acts as a member of the test server through the fake Discord's own Python API:

  imagine PROMPT [--ar 16:9 ...]   run /imagine (prompt parameters work)
  press N LABEL|CUSTOM_ID          press a button of message N (its label, e.g. U1 or Reroll, or its custom id)
  react N EMOJI                    react to message N (🔄 rerolls)
  show                             print every message again
  help, quit

After each command it waits until the bot has handled it and no job is running, then prints the messages that
appeared or changed. The fake Discord checks request bodies with jsonschema (requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cli.sandbox import Sandbox, sandbox
from fakes.discord_components import buttons
from fakes.discord_models import StoredMessage

HELP = __doc__.split("\n\n")[1].split("\n", 1)[1] if __doc__ else ""
JOB_TIMEOUT = 300.0  # seconds a command may keep jobs running (FLUX.2 at full speed takes up to about 40 s)


class Playground:
    def __init__(self, box: Sandbox, save: Path | None) -> None:
        self.box = box
        self.save = save
        self.shown: dict[int, str] = {}  # message id -> the text last printed for it

    def messages(self) -> list[StoredMessage]:
        return [m for m in self.box.discord.messages_in(self.box.channel.id) if not m.deleted]

    def describe(self, number: int, message: StoredMessage) -> str:
        names = self.box.name_of
        author = names(message.author.id) + (" (only you can see this)" if message.ephemeral else "")
        lines = [f"[{number}] {author}"]
        if message.loading:
            lines.append("  … is thinking")
        # a V2 card's small print ("-# ") shown as plain lines
        lines += [f"  {line.removeprefix('-# ')}" for line in _mentions(message.text, names).splitlines()]
        for embed in message.embeds:
            for key in ("title", "description"):
                if embed.get(key):
                    lines += [f"  | {line}" for line in _mentions(embed[key], names).splitlines()]
            fields = [f"{f['name']}: {_mentions(f['value'], names)}" for f in embed.get("fields") or []]
            if fields:
                lines.append("  | " + " · ".join(fields))
        for attachment in message.attachments:
            lines.append(f"  image: {attachment.filename} ({len(attachment.data) // 1024} KB)")
        shown = [_button(b) for b in buttons(message.components)]
        if shown:
            lines.append("  buttons: " + " ".join(shown))
        reactions = [f"{emoji} {len(users)}" for emoji, users in message.reactions.items() if users]
        if reactions:
            lines.append("  reactions: " + ", ".join(reactions))
        return "\n".join(lines)

    def print_changes(self, *, everything: bool = False) -> None:
        for number, message in enumerate(self.messages(), start=1):
            text = self.describe(number, message)
            if everything or self.shown.get(message.id) != text:
                print(text, flush=True)
                self.shown[message.id] = text
                self.save_images(message)

    def save_images(self, message: StoredMessage) -> None:
        if self.save is None:
            return
        self.save.mkdir(parents=True, exist_ok=True)
        for attachment in message.attachments:
            (self.save / attachment.filename).write_bytes(attachment.data)

    def message(self, number: str) -> StoredMessage:
        messages = self.messages()
        if not number.isdigit() or not 1 <= int(number) <= len(messages):
            raise ValueError(f"no message {number}; messages are numbered 1 to {len(messages)} (see `show`)")
        return messages[int(number) - 1]

    async def idle(self) -> None:
        """Wait until every handler the bot started has returned and no job is left running: nothing more
        will happen until the next command (the store records a job's end just after Discord shows it)."""
        bot = self.box.bot
        await bot.settled(lambda: True, timeout=JOB_TIMEOUT)
        async with asyncio.timeout(JOB_TIMEOUT):
            # The store has no change notification: poll it (this only waits for a condition, never concludes).
            while await bot.store.active_jobs(None):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await bot.settled(lambda: True, timeout=JOB_TIMEOUT)

    async def run(self, line: str) -> bool:
        """Carry out one command; False to stop."""
        word, _, rest = line.strip().partition(" ")
        rest = rest.strip()
        box = self.box
        if word in ("quit", "exit"):
            return False
        if word in ("", "#"):
            return True
        if word == "help":
            print(HELP)
        elif word == "show":
            self.print_changes(everything=True)
        elif word == "imagine" and rest:
            handle = await box.discord.slash_command(box.guild, box.channel, box.user, "imagine", {"prompt": rest})
            await box.bot.interaction_handled(handle.id, timeout=JOB_TIMEOUT)
            await self.idle()
            self.print_changes()
        elif word == "press" and len(rest.split(None, 1)) == 2:
            number, wanted = rest.split(None, 1)
            message = self.message(number)
            custom_id = _find_button(message, wanted)
            handle = await box.discord.click_button(message.id, custom_id, box.user)
            await box.bot.interaction_handled(handle.id, timeout=JOB_TIMEOUT)
            await self.idle()
            if handle.response_type == 9:  # a modal: the form is Discord's, not something a terminal shows
                print("(that button opens a form, which the playground cannot fill in)")
            self.print_changes()
        elif word == "react" and len(rest.split()) == 2:
            number, emoji = rest.split()
            message = self.message(number)
            await box.discord.add_reaction(box.channel.id, message.id, box.user.id, emoji)
            await box.bot.reaction_handled(message.id, box.user.id, emoji, timeout=JOB_TIMEOUT)
            await self.idle()
            self.print_changes()
        else:
            print(f"unknown command: {line.strip()!r}; try `help`")
        return True


def _button(component: dict[str, Any]) -> str:
    label = component.get("label") or (component.get("emoji") or {}).get("name", "")
    return f"[{label}]" + (" (disabled)" if component.get("disabled") else "")


def _find_button(message: StoredMessage, wanted: str) -> str:
    offered = [b for b in buttons(message.components) if b.get("custom_id")]
    for button in offered:
        emoji = (button.get("emoji") or {}).get("name", "")
        if (
            wanted in (button["custom_id"], button.get("label"), emoji)
            or wanted.lower() == str(button.get("label", "")).lower()
        ):
            return str(button["custom_id"])
    labels = ", ".join(str(b.get("label") or b["custom_id"]) for b in offered) or "none"
    raise ValueError(f"message has no button {wanted!r}; its buttons: {labels}")


def _mentions(text: str, names: Callable[[int], str]) -> str:
    return re.sub(r"<@!?(\d+)>", lambda match: "@" + str(names(int(match.group(1)))), text)


async def play(save: Path | None, speed: float) -> int:
    async with sandbox(speed=speed) as box:
        playground = Playground(box, save)
        interactive = sys.stdin.isatty()
        print("The bot is running against the fake Discord and the fake CometAPI. Type `help`.", flush=True)
        loop = asyncio.get_running_loop()
        while True:
            if interactive:
                print("> ", end="", flush=True)
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                break
            if not interactive:
                print(f"> {line.strip()}", flush=True)  # echoed, so a transcript reads like a session
            try:
                if not await playground.run(line):
                    break
            except (ValueError, LookupError, PermissionError, RuntimeError, TimeoutError) as exc:
                print(f"error: {exc}", flush=True)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m cli.playground", description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, help="write every image the bot posts to this folder")
    parser.add_argument("--speed", type=float, default=0.3, help="the fake models' speed (1.0: real durations)")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("jsonschema") is None:
        print("error: the fake Discord needs jsonschema: pip install -r requirements-dev.txt", file=sys.stderr)
        return 2
    return asyncio.run(play(args.save, args.speed))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
