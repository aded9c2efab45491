"""The fake CometAPI's OpenAI-compatible routes: chat completions and moderations, as CometAPI documents them.

`FakeCometAPI` (fakes/cometapi.py) serves them at POST /v1/chat/completions and POST /v1/moderations with
the same bearer key; its `inject("chat" | "moderation", ...)` overrides answers like any route. This module
holds what they answer, in `fake.words`:

    fake.words.queue_reply("a castle at dusk, volumetric light", usage=(40, 12))  # the next chat answers this
    fake.words.queue_flag(categories={"sexual": True})      # the next moderation result is flagged
    fake.words.flag_words = {"gore"}                        # text inputs with these words are flagged
    fake.words.vision_models = {"gpt-5-mini"}               # image parts sent to another model: a 400

With nothing queued, a chat asked about an image answers four numbered prompts, and any other chat answers a
longer version of the user's text. `usage` counts about four characters a token and 765 tokens an image, as
OpenAI's models roughly do; a queued reply may set its own.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from fakes.cometapi_models import comet_error

CHAT_MODELS = frozenset({"gpt-5-mini", "gpt-5.1", "gpt-4o-mini", "gpt-4o"})
MODERATION_MODELS = frozenset({"omni-moderation-latest", "text-moderation-latest"})
IMAGE_TOKENS = 765
CATEGORIES = ("sexual", "sexual/minors", "harassment", "hate", "illicit", "self-harm", "violence", "violence/graphic")


@dataclass(frozen=True)
class Reply:
    content: str
    usage: tuple[int, int] | None = None  # (prompt_tokens, completion_tokens); None: counted from the texts
    finish_reason: str = "stop"


@dataclass
class FakeWords:
    chat_models: set[str] = field(default_factory=lambda: set(CHAT_MODELS))
    vision_models: set[str] = field(default_factory=lambda: set(CHAT_MODELS))
    flag_words: set[str] = field(default_factory=set)
    replies: deque[Reply] = field(default_factory=deque)
    flags: deque[dict[str, bool]] = field(default_factory=deque)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def queue_reply(self, content: str, *, usage: tuple[int, int] | None = None, finish_reason: str = "stop") -> None:
        """The next chat completion answers `content` (FIFO)."""
        self.replies.append(Reply(content, usage, finish_reason))

    def queue_flag(self, categories: dict[str, bool] | None = None) -> None:
        """The next moderation's results are flagged, with these categories (default: sexual)."""
        self.flags.append(categories or {"sexual": True})

    def reset(self) -> None:
        self.chat_models, self.vision_models = set(CHAT_MODELS), set(CHAT_MODELS)
        self.flag_words.clear()
        self.replies.clear()
        self.flags.clear()

    # -- answers ----------------------------------------------------------------------------------------

    def chat(self, body: Any) -> web.Response:
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            return comet_error(400, "messages is required", "invalid_request")
        model = body.get("model")
        if model not in self.chat_models:
            return comet_error(503, f"No available channels for model {model} under group default", "model_not_found")
        texts: list[str] = []
        images = 0
        for message in body["messages"]:
            if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant"):
                return comet_error(400, "each message needs a role and content", "invalid_request")
            content = message.get("content")
            if isinstance(content, str):
                texts.append(content)
                continue
            if not isinstance(content, list):
                return comet_error(400, "content must be a string or a list of parts", "invalid_request")
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text" and isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif kind == "image_url" and isinstance(part.get("image_url"), dict) and part["image_url"].get("url"):
                    images += 1
                else:
                    return comet_error(400, f"invalid content part: {str(part)[:60]}", "invalid_request")
        if images and model not in self.vision_models:
            return comet_error(400, f"model {model} does not support image input", "invalid_request")
        reply = self.replies.popleft() if self.replies else Reply(self._default(texts, images))
        prompt_tokens, completion_tokens = reply.usage or (
            sum(len(t) for t in texts) // 4 + 1 + IMAGE_TOKENS * images,
            len(reply.content) // 4 + 1,
        )
        return web.json_response(
            {
                "id": f"chatcmpl-{next(self._ids)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply.content},
                        "finish_reason": reply.finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )

    @staticmethod
    def _default(texts: list[str], images: int) -> str:
        if images:
            return "\n".join(f"{n}. a fake scene number {n}, soft light, detailed" for n in range(1, 5))
        typed = texts[-1] if texts else ""
        return f"{typed}, richly detailed, golden hour light, sharp focus"

    def moderation(self, body: Any) -> web.Response:
        if not isinstance(body, dict) or "input" not in body:
            return comet_error(400, "input is required", "invalid_request")
        model = body.get("model", "omni-moderation-latest")
        if model not in MODERATION_MODELS:
            return comet_error(400, f"unknown moderation model {model}", "invalid_request")
        items = body["input"]
        inputs = [items] if isinstance(items, str) else items
        if not isinstance(inputs, list) or not inputs:
            return comet_error(400, "input must be a string or a list of parts", "invalid_request")
        texts, kinds = [], set()
        for item in inputs:
            if isinstance(item, str):
                texts.append(item)
                kinds.add("text")
            elif isinstance(item, dict) and item.get("type") == "text":
                texts.append(str(item.get("text", "")))
                kinds.add("text")
            elif isinstance(item, dict) and item.get("type") == "image_url" and isinstance(item.get("image_url"), dict):
                kinds.add("image")
            else:
                return comet_error(400, f"invalid input part: {str(item)[:60]}", "invalid_request")
        flagged_as = self.flags.popleft() if self.flags else {}
        if any(word in text.lower() for text in texts for word in self.flag_words):
            flagged_as = {**flagged_as, "violence": True}
        categories = {name: bool(flagged_as.get(name)) for name in {*CATEGORIES, *flagged_as}}
        result = {
            "flagged": any(categories.values()),
            "categories": categories,
            "category_scores": {name: 0.97 if hit else 0.001 for name, hit in categories.items()},
            "category_applied_input_types": {name: sorted(kinds) for name in categories},
        }
        return web.json_response({"id": f"modr-{next(self._ids)}", "model": model, "results": [result]})
