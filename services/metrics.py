"""What the bot counts for Prometheus, in a registry of its own (so several bots in one test process don't mix).

Events are counted where they happen (admission, the job runner, the Discord HTTP trace); the queue depth,
the jobs in flight and CometAPI's errors are read when Prometheus scrapes, from the objects that keep them.
Every label has a bounded set of values: a model outside the catalogue is counted as `other`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from services.money import MICROS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREDICTION_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
DELIVERY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
OTHER_MODEL = "other"  # the label of every model outside the catalogue


class _CountsCollector(Collector):
    """A counter family read from a live mapping at scrape time (e.g. the API client's errors by kind)."""

    def __init__(self, name: str, documentation: str, label: str, read: Callable[[], Mapping[str, int]]) -> None:
        self._name, self._doc, self._label, self._read = name, documentation, label, read

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._doc, labels=[self._label])
        for key, value in sorted(self._read().items()):
            family.add_metric([key], float(value))
        yield family


class Metrics:
    def __init__(self, known_models: Iterable[str] = ()) -> None:
        """`known_models`: the catalogue's model ids, each counted under its own label (any other as `other`)."""
        self._known = frozenset(known_models)
        self.registry = CollectorRegistry()
        self.jobs = Counter(
            "flux_jobs", "Jobs admitted and ended by this process, by status and model", ["status", "model"],
            registry=self.registry,
        )  # fmt: skip
        self.spend = Counter(
            "flux_estimated_spend_usd", "Estimated cost of the jobs this process admitted, in US dollars", ["model"],
            registry=self.registry,
        )  # fmt: skip
        self.prediction_seconds = Histogram(
            "flux_prediction_seconds", "From the create to the prediction's end, by model", ["model"],
            buckets=PREDICTION_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.delivery_seconds = Histogram(
            "flux_delivery_seconds", "From the prediction's end to the images posted in Discord, by model", ["model"],
            buckets=DELIVERY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.discord_429 = Counter(
            "flux_discord_rate_limited", "Answers with HTTP 429 from Discord's API", registry=self.registry
        )
        self.queue_depth = Gauge("flux_queue_depth", "Jobs waiting for a prediction slot", registry=self.registry)
        self.in_flight = Gauge("flux_jobs_in_flight", "Jobs this process is working on", registry=self.registry)
        self.tasks = Gauge("flux_asyncio_tasks", "Asyncio tasks alive in this process", registry=self.registry)
        self.loop_lag = Gauge(
            "flux_event_loop_lag_seconds", "The longest event-loop stall since the last scrape", registry=self.registry
        )
        self.image_memory = Gauge(
            "flux_image_memory_bytes", "Bytes of images in flight held in memory (IMAGE_MEMORY_MB caps them)",
            registry=self.registry,
        )  # fmt: skip
        self.images_spilled = Gauge(
            "flux_images_spilled", "Images kept in temporary files because the memory budget was full, since start",
            registry=self.registry,
        )  # fmt: skip

    def _model_label(self, model: str) -> str:
        """The model's label: its short name if it is in the catalogue, else `other`. Where unknown models are
        allowed (ALLOW_UNKNOWN_MODELS) members choose the names: each would be a new series for Prometheus to keep."""
        if model not in self._known:
            return OTHER_MODEL
        return model.rsplit("/", 1)[-1]

    # Events

    def job_admitted(self, model: str, cost_microusd: int) -> None:
        self.jobs.labels("admitted", self._model_label(model)).inc()
        self.spend.labels(self._model_label(model)).inc(float(cost_microusd / MICROS))

    def job_ended(self, status: str, model: str) -> None:
        self.jobs.labels(str(status), self._model_label(model)).inc()

    def prediction_done(self, model: str, seconds: float) -> None:
        self.prediction_seconds.labels(self._model_label(model)).observe(max(seconds, 0.0))

    def delivered(self, model: str, seconds: float) -> None:
        self.delivery_seconds.labels(self._model_label(model)).observe(max(seconds, 0.0))

    def discord_rate_limited(self) -> None:
        self.discord_429.inc()

    # Read at scrape time

    def watch(
        self,
        *,
        queue_depth: Callable[[], int],
        in_flight: Callable[[], int],
        api_errors: Callable[[], Mapping[str, int]],
        tasks: Callable[[], int] = lambda: 0,
        loop_lag: Callable[[], float] = lambda: 0.0,
        image_memory: Callable[[], int] = lambda: 0,
        images_spilled: Callable[[], int] = lambda: 0,
    ) -> None:
        self.queue_depth.set_function(lambda: float(queue_depth()))
        self.in_flight.set_function(lambda: float(in_flight()))
        self.tasks.set_function(lambda: float(tasks()))
        self.loop_lag.set_function(loop_lag)
        self.image_memory.set_function(lambda: float(image_memory()))
        self.images_spilled.set_function(lambda: float(images_spilled()))
        self.registry.register(
            _CountsCollector("flux_cometapi_errors", "Failed CometAPI requests, by kind", "kind", api_errors)
        )

    def text(self) -> bytes:
        return generate_latest(self.registry)
