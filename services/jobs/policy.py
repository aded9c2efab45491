"""The operator's rules that admission applies to every request, as plain values (made from the settings by
services/config.py, so the jobs need not know the settings)."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.jobs.words import ChatPrice
from services.limits import Limits
from services.rules.catalogue import Catalogue
from services.rules.pricing import Pricing
from services.store.credits import CreditTerms


@dataclass(frozen=True)
class Policy:
    default_model: str
    # The bot's own limits: cooldown, jobs in flight, the caps per user and for the whole bot; a server's
    # settings narrow them in its channels.
    limits: Limits
    catalogue: Catalogue  # the models in use
    pricing: Pricing  # the catalogue's prices, with the operator's over them
    blocked_words: tuple[str, ...] = field(default=(), repr=False)  # the operator's list, on top of each server's
    allow_unknown_models: bool = False
    max_input_image_bytes: int = 10 * 1024 * 1024
    input_image_mode: str = "url"  # how input images are kept and sent (services/jobs/input_refs.py)
    input_image_retention_seconds: float = 3 * 86400.0  # how long after its last use an input image is kept
    max_request_bytes: int | None = None  # the largest create body the bot sends (images inline), None: any
    # Words from a chat model (services/jobs/words.py): ✨ Enhance's model, /describe's (it must see images),
    # and what their tokens cost.
    chat_model: str = "gpt-5-mini"
    describe_model: str = "gpt-5-mini"
    chat_price: ChatPrice = field(default_factory=lambda: ChatPrice(2_000))
    # Credits people buy (off unless the operator names SKUs): what pays for each job.
    credits: CreditTerms = field(default_factory=CreditTerms)
