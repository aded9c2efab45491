"""Words from a chat model with the same CometAPI key: ✨ prompt help for /imagine and four prompts for /describe.

What is sent (POST /v1/chat/completions, OpenAI's format, as CometAPI documents it):

* ✨ Enhance: to CHAT_MODEL, a system message asking for one richer FLUX prompt, and the typed prompt;
* describe: to DESCRIBE_MODEL (one that sees images), a system message asking for four prompts, one a line,
  and the image as a data: URL (a Discord link may not be downloadable by CometAPI).

What a chat costs: the answer's `usage` (prompt and completion tokens) at CHAT_PRICE_PER_1K_TOKENS. Each chat is
recorded as a row of its own kind (WORDS_KINDS) booked before it is sent at an upper bound, through the same
atomic check of the limits as an image job (so a user over budget causes no chat), then settled at its real
tokens. A row of its own, rather than a share of an image job's cost, because the chat is paid for whether or
not an image follows (the rewritten prompt may be refused, or the image may not fit the budget).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Protocol

from services.cometapi.words import ChatAnswer

ENHANCE_MAX_TOKENS = 300
DESCRIBE_MAX_TOKENS = 600
# Tokens the prompt is booked at before the answer says: about three characters a token (an over-estimate for
# English), and an image as a high-detail image is counted by OpenAI's vision models at most (1,105 tokens for
# 1024x1024; a margin on top).
CHARS_PER_TOKEN = 3
IMAGE_TOKENS = 1600
MAX_PROMPT_CHARS = 1500  # a rewritten prompt longer than this is cut: FLUX reads about 512 tokens
PROMPTS = 4

ENHANCE_SYSTEM = (
    "You rewrite short image prompts for the FLUX text-to-image model. Keep the subject and every detail the user "
    "gave; add concrete visual detail: setting, composition, lighting, colours, style, mood. Answer with the prompt "
    "only, one paragraph of at most 80 words, in English, without quotes or any other text."
)
DESCRIBE_SYSTEM = (
    "You write prompts for the FLUX text-to-image model. Look at the image and write four different prompts that "
    "would make an image like it, each one paragraph of at most 60 words: subject, setting, composition, "
    "lighting, colours, style. Answer with exactly four lines, numbered 1. to 4., and nothing else."
)


class Chat(Protocol):
    """What sends a chat completion (services/cometapi/client.py CometClient)."""

    async def chat(self, model: str, messages: list[dict[str, object]], *, max_tokens: int) -> ChatAnswer: ...


@dataclass(frozen=True)
class ChatPrice:
    """Millionths of a dollar per 1000 tokens, prompt and completion alike (CHAT_PRICE_PER_1K_TOKENS)."""

    micros_per_1k: int

    def of(self, tokens: int) -> int:
        return math.ceil(tokens * self.micros_per_1k / 1000)

    def bound(self, messages: list[dict[str, object]], max_tokens: int) -> int:
        """The upper bound booked before sending `messages`: their tokens, over-estimated, and the most answered."""
        chars, images = 0, 0
        for message in messages:
            content = message.get("content")
            for part in content if isinstance(content, list) else [{"text": content}]:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    images += 1
                elif isinstance(part, dict):
                    chars += len(str(part.get("text") or ""))
        return self.of(chars // CHARS_PER_TOKEN + 1 + images * IMAGE_TOKENS + max_tokens)


def enhance_messages(prompt: str) -> list[dict[str, object]]:
    return [{"role": "system", "content": ENHANCE_SYSTEM}, {"role": "user", "content": prompt}]


def describe_messages(data_url: str) -> list[dict[str, object]]:
    parts: list[dict[str, object]] = [
        {"type": "text", "text": "Four prompts for this image."},
        {"type": "image_url", "image_url": {"url": data_url}},
    ]
    return [{"role": "system", "content": DESCRIBE_SYSTEM}, {"role": "user", "content": parts}]


def enhanced_prompt(answer: str) -> str:
    """The rewritten prompt from the chat's answer: one paragraph, without the quotes or label models add."""
    text = " ".join(answer.split())
    text = re.sub(r"^(?:\*\*)?(?:enhanced |rewritten )?prompt:?(?:\*\*)?\s*", "", text, flags=re.IGNORECASE)
    text = text.strip().strip("\"“”'`").strip()
    return text[:MAX_PROMPT_CHARS].rstrip()


# A prompt's number, as chat models write it: "1.", "2)", "**3.**", "Prompt 4:", or numbered twice ("2. **2.**").
_NUMBERED = re.compile(r"^\s*(?:(?:\*\*)?(?:prompt\s*)?[1-9][.):]\s*(?:\*\*)?\s*)+", re.IGNORECASE)


def four_prompts(answer: str) -> list[str]:
    """The prompts in a describe answer (numbered lines, or else its non-empty lines), at most four."""
    lines = [line for line in answer.splitlines() if line.strip()]
    numbered = [line for line in lines if _NUMBERED.match(line)]
    chosen = numbered or lines
    prompts = [enhanced_prompt(_NUMBERED.sub("", line)) for line in chosen]
    return [prompt for prompt in prompts if prompt][:PROMPTS]
