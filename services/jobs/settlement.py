"""What a job costs once its prediction ended: the figure the budgets and the usage report count from then on.

Admission books an upper bound (services/rules/pricing.py); this replaces it with what the API made:

* a prediction that succeeded counts in full whatever happens after (a cancel while its images download, an
  upload that fails, a deleted channel): by the number of its outputs, then by their real sizes once fetched;
* one that was `aborted` is not billed (the API says so) and counts nothing;
* one that failed, was cancelled or timed out counts its booked cost unless the operator says such predictions
  are free (COUNT_FAILED_PREDICTIONS=false): the price table is silent on whether CometAPI bills them;
* a job that ended before its prediction was created counts nothing, except one whose create may have reached the
  API (interrupted while creating it, or an `UncertainCreate`): that one counts its booked cost. A create the API
  refused outright (400-404, 422, 402, a 429 that outlasted the retries) or that never left (no connection was
  made) made no prediction: it counts nothing (`refused`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.cometapi.files import ImageFile
from services.cometapi.predictions import ABORTED, SUCCEEDED, Prediction
from services.errors import ApiError, UncertainCreate
from services.rules.input_images import dimensions
from services.rules.pricing import Pricing
from services.store.models import Job, JobStatus


@dataclass(frozen=True)
class Settlement:
    pricing: Pricing  # the prices in force, of the catalogue in use
    count_failed: bool = True

    def succeeded(self, job: Job, prediction: Prediction) -> int:
        """A prediction that came back with outputs, before they are fetched: by their number."""
        reported = prediction.metrics.get("image_count")
        count = len(prediction.output) or (reported if isinstance(reported, int) and reported > 0 else 0)
        return self.pricing.settle(job.model, job.input, job.extra.input_sizes, outputs=count or None)

    def fetched(self, job: Job, images: Sequence[ImageFile]) -> int:
        """Once the outputs are fetched: by their real sizes (by their number where a size cannot be read)."""
        sizes = [dimensions(image) for image in images]
        known = [size for size in sizes if size is not None]
        if len(known) != len(sizes) or not known:
            return self.pricing.settle(job.model, job.input, job.extra.input_sizes, outputs=len(images) or None)
        return self.pricing.settle(job.model, job.input, job.extra.input_sizes, output_sizes=known)

    def ended(self, job: Job, error: BaseException) -> int | None:
        """What `job` (as stored before it ends) counts after ending on `error`; None: keep what it settled at."""
        if job.settled_microusd is not None:
            return None  # its prediction succeeded: it counts in full
        if job.prediction_id is None:
            # Nothing was made, unless its create was in the air and may have reached the API.
            if job.status != JobStatus.SUBMITTING or refused(error):
                return 0
            return job.cost_microusd
        outcome = getattr(error, "outcome", None)
        if outcome == ABORTED:
            return 0
        if outcome == SUCCEEDED or self.count_failed:
            return job.cost_microusd
        return 0


def refused(error: BaseException) -> bool:
    """Whether `error`, ending a job whose create was sent, says no prediction was made.

    The API client raises an `ApiError` for a create only when the API answered it with a refusal (400-404,
    422, 402, a 429 that outlasted the retries, another 4xx or a redirect, a 500 whose code says
    invalid_request) or no connection was ever made; a create that may have reached it raises `UncertainCreate`.
    Anything else (an interruption, a crash, a store that failed after the create) may have made one.
    """
    return isinstance(error, ApiError) and not isinstance(error, UncertainCreate)
