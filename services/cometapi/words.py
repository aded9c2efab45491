"""The answers of CometAPI's OpenAI-compatible routes (chat completions, moderations) as plain values.

Both routes share the prediction route's host and key (as CometAPI documents them); client.py sends them. An
answer without the fields the bot needs is `Unavailable`, like an unreadable prediction.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.errors import Unavailable


@dataclass(frozen=True)
class ChatAnswer:
    content: str
    prompt_tokens: int
    completion_tokens: int
    model: str = ""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Checked:
    """What the moderation endpoint said of one input: flagged or not, and the categories it flagged."""

    flagged: bool
    categories: tuple[str, ...] = ()


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def chat_answer(data: object) -> ChatAnswer:
    if not isinstance(data, dict):
        raise Unavailable("The chat answer was not a JSON object.")
    choices = data.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise Unavailable("The chat answer had no message.")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    assert isinstance(usage, dict)
    prompt, completion = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
    if not prompt and not completion:  # some providers give only the total
        prompt = _count(usage.get("total_tokens"))
    model = data.get("model")
    return ChatAnswer(content.strip(), prompt, completion, model if isinstance(model, str) else "")


def checked(data: object) -> Checked:
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list) or not results or not all(isinstance(r, dict) for r in results):
        raise Unavailable("The moderation answer had no results.")
    flagged = any(r.get("flagged") is True for r in results)
    names = sorted(
        {
            str(name)
            for r in results
            if isinstance(r.get("categories"), dict)
            for name, hit in r["categories"].items()
            if hit is True
        }
    )
    return Checked(flagged, tuple(names))
