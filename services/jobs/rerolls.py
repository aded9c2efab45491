"""What a reroll asks for: the parent job's model and inputs, without its seed (a new one is drawn)."""

from __future__ import annotations

from dataclasses import dataclass

from services.store.models import Job

IMAGE_KEYS = ("input_image",)
IMAGES_KEY = "input_images"


@dataclass(frozen=True)
class RerollRequest:
    prompt: str
    given: dict[str, object]
    image_urls: list[str]


def reroll_request(parent: Job) -> RerollRequest:
    """Same settings as `parent` (including its input image, for edits), and no seed."""
    model_input = dict(parent.input)
    prompt = str(model_input.pop("prompt", ""))
    model_input.pop("seed", None)
    images = [str(model_input.pop(key)) for key in IMAGE_KEYS if key in model_input]
    several = model_input.pop(IMAGES_KEY, None)
    if isinstance(several, list):
        images += [str(url) for url in several]
    return RerollRequest(prompt, {"model": parent.model, **model_input}, images)
