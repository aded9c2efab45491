"""What every kind of job has: the defaults, which are those of /imagine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from services.jobs.input_refs import KeptImages
from services.rules.catalogue import MAX_PROMPT_CHARS, ModelSpec
from services.rules.input_images import ImageRef
from services.rules.options import RequestContext, Resolved, resolve


class Kind:
    """A kind of job. Subclasses override what differs from a plain /imagine; an instance may carry the
    request's own choices (a variation's strength, an edit that picks its images)."""

    name: ClassVar[str]

    @property
    def checks_options(self) -> bool:
        """Whether the options given are judged one by one before acknowledging (a kind that fits them to its
        own model judges them on admission)."""
        return True

    @property
    def checks_image_count(self) -> bool:
        """Whether the number of images given is judged against the named model before acknowledging."""
        return True

    def prompt(self, typed: str) -> str:
        """The prompt to send for what was typed (after its parameters were taken out)."""
        return typed

    def prompt_room(self) -> int:
        """The most a typed prompt may be: the prompt's limit, less the instruction this kind wraps around it
        (measured around a one-letter prompt, since an empty one may be sent as a placeholder)."""
        return MAX_PROMPT_CHARS - (len(self.prompt("x")) - 1)

    def model(self, context: RequestContext) -> str | None:
        """The model when the request names none; None: the usual (the user's, the server's, the bot's)."""
        return None

    def options(self, spec: ModelSpec | None, given: Mapping[str, object]) -> dict[str, object]:
        """The options to send, from those given, for the chosen model."""
        return dict(given)

    def images(self, images: Sequence[ImageRef], spec: ModelSpec | None) -> list[ImageRef]:
        """Which of the given images to fetch and send."""
        return list(images)

    def sized(self, sizes: Sequence[tuple[int, int] | None]) -> Kind:
        """This kind once the input images' real sizes (width, height; None where unknown) are known, before
        `build`; a kind whose output is shaped by them (an upscale) keeps them."""
        return self

    def derive(self, kept: KeptImages) -> tuple[KeptImages, dict[str, Any]]:
        """The images to send, made from those fetched (a canvas for an outpaint), and what the job keeps about
        them (fields of JobExtra); by default the fetched ones as they are."""
        return kept, {}

    def build(
        self, prompt: str, given: Mapping[str, object], references: Sequence[str], context: RequestContext
    ) -> Resolved:
        """The model and its input, from the prompt, the options and the input images' references."""
        return resolve(prompt, given, references, context)

    def extra(self) -> dict[str, Any]:
        """What this kind keeps in the job (fields of JobExtra)."""
        return {}
