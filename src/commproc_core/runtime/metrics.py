"""Worker metrics for Prometheus, and the worker's HTTP endpoint: /healthz, /readyz, /metrics.

prometheus-client is optional (``pip install 'commproc-core[metrics]'``) and
imported only when metrics are created. Without it :func:`create_metrics`
returns :class:`WorkerMetrics`, which records nothing and makes /metrics
answer 501 saying what to install; health and readiness still work.

Every :class:`PrometheusMetrics` has its own ``CollectorRegistry``, so
several workers (or tests) in one process never share or clash over series.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from commproc_core.model import QueueMessage, utcnow
from commproc_core.ports import ProcessedBatch

__all__ = ["HealthServer", "PrometheusMetrics", "WorkerMetrics", "create_metrics", "prometheus_available"]

log = logging.getLogger("commproc.metrics")

#: What /metrics says when prometheus-client is missing.
MISSING = (
    "prometheus-client is not installed, so this worker keeps no metrics.\n"
    "Install it with: pip install 'commproc-core[metrics]'\n"
)

_LAG_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400)
_BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def prometheus_available() -> bool:
    """Whether prometheus-client can be imported."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


class WorkerMetrics:
    """What the worker reports; this base records nothing (prometheus-client missing or unwanted)."""

    #: True when the metrics are really kept.
    enabled = False

    def batch(
        self, channel: str, queue: str, messages: Sequence[QueueMessage], report: ProcessedBatch
    ) -> None:
        """One received batch and what became of it."""

    def poll_error(self, channel: str, queue: str, error: str) -> None:
        """A receive (or a whole batch) failed; the poller backs off."""

    def queue_depth(self, channel: str, queue: str, depth: int) -> None:
        """The queue's ``ApproximateNumberOfMessages``."""

    def outbox(self, outcomes: Mapping[str, int]) -> None:
        """Counts of one outbox dispatch pass (sent, failed, retried, suppressed, skipped)."""

    def render(self) -> tuple[int, str, bytes]:
        """HTTP status, content type and body for /metrics."""
        return 501, "text/plain; charset=utf-8", MISSING.encode()


class PrometheusMetrics(WorkerMetrics):
    """Worker metrics in a dedicated prometheus-client registry (``self.registry``)."""

    enabled = True

    def __init__(self, registry: Any = None) -> None:
        import prometheus_client as prom

        self._prom = prom
        self.registry = registry if registry is not None else prom.CollectorRegistry(auto_describe=True)
        where = ("channel", "queue")
        r = self.registry
        self.received = prom.Counter(
            "commproc_messages_received", "Queue messages received.", where, registry=r
        )
        self.outcomes = prom.Counter(
            "commproc_messages",
            "Queue messages by outcome: processed, duplicate, rejected, ignored or retry.",
            (*where, "outcome"),
            registry=r,
        )
        self.failed = prom.Counter(
            "commproc_messages_failed",
            "Queue messages rejected (permanent) or left for retry (transient), by reason.",
            (*where, "reason"),
            registry=r,
        )
        self.events = prom.Counter(
            "commproc_events",
            "Communication events recorded, by type and status (processed, failed, ignored).",
            ("channel", "event_type", "status"),
            registry=r,
        )
        self.duplicates = prom.Counter(
            "commproc_events_duplicate", "Provider events already recorded (redeliveries).", where, registry=r
        )
        self.batch_seconds = prom.Histogram(
            "commproc_batch_duration_seconds",
            "Time to process and acknowledge one received batch.",
            where,
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.lag = prom.Histogram(
            "commproc_queue_lag_seconds",
            "Time from SentTimestamp to receipt by the worker.",
            where,
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.depth = prom.Gauge(
            "commproc_queue_depth_messages", "ApproximateNumberOfMessages of the queue.", where, registry=r
        )
        self.poll_errors = prom.Counter(
            "commproc_poll_errors",
            "Failed receives and failed batches, by error.",
            (*where, "error"),
            registry=r,
        )
        self.outbox_messages = prom.Counter(
            "commproc_outbox_messages", "Outbox messages handled, by outcome.", ("outcome",), registry=r
        )
        self.conflicts = prom.Counter(
            "commproc_write_conflicts",
            "Batch transactions run again after losing a race to another worker (a key taken, a deadlock).",
            where,
            registry=r,
        )

    def batch(
        self, channel: str, queue: str, messages: Sequence[QueueMessage], report: ProcessedBatch
    ) -> None:
        now = utcnow()
        self.received.labels(channel, queue).inc(len(messages))
        for message in messages:
            if message.sent_at is not None:
                self.lag.labels(channel, queue).observe(max((now - message.sent_at).total_seconds(), 0.0))
        for outcome in report.outcomes:
            self.outcomes.labels(channel, queue, outcome.outcome).inc()
            if outcome.outcome in ("rejected", "retry"):
                self.failed.labels(channel, queue, outcome.reason or "unknown").inc()
            for event, duplicate in zip(outcome.events, outcome.duplicates, strict=False):
                if duplicate:
                    self.duplicates.labels(channel, queue).inc()
                else:
                    self.events.labels(event.channel, event.event_type, event.status).inc()
        # Not part of the ChannelProcessor protocol: processors of our own pipeline count it.
        conflicts = getattr(report.stats, "conflicts", 0)
        if conflicts:
            self.conflicts.labels(channel, queue).inc(conflicts)
        self.batch_seconds.labels(channel, queue).observe(report.stats.elapsed)

    def poll_error(self, channel: str, queue: str, error: str) -> None:
        self.poll_errors.labels(channel, queue, error).inc()

    def queue_depth(self, channel: str, queue: str, depth: int) -> None:
        self.depth.labels(channel, queue).set(depth)

    def outbox(self, outcomes: Mapping[str, int]) -> None:
        for outcome, count in outcomes.items():
            if count:
                self.outbox_messages.labels(outcome).inc(count)

    def render(self) -> tuple[int, str, bytes]:
        return 200, str(self._prom.CONTENT_TYPE_LATEST), bytes(self._prom.generate_latest(self.registry))


def create_metrics(*, required: bool = False) -> WorkerMetrics:
    """PrometheusMetrics when prometheus-client is installed; else the recording-nothing base.

    With ``required`` a missing prometheus-client raises ImportError naming the extra.
    """
    try:
        return PrometheusMetrics()
    except ImportError as exc:
        if required:
            raise ImportError("metrics need prometheus-client: pip install 'commproc-core[metrics]'") from exc
        log.warning("prometheus-client is not installed; /metrics will answer 501")
        return WorkerMetrics()


#: A health check: (healthy, JSON-able details).
Check = Callable[[], "tuple[bool, Mapping[str, Any]]"]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            status, content_type, body = self.server.metrics.render()
        elif path in ("/healthz", "/readyz"):
            check = self.server.live if path == "/healthz" else self.server.ready
            try:
                healthy, details = check()
            except Exception as exc:  # a failing check is an unhealthy answer, not a dead server
                healthy, details = False, {"error": type(exc).__name__}
            status = 200 if healthy else 503
            content_type = "application/json"
            body = json.dumps({"status": "ok" if healthy else "unavailable", **details}).encode()
        else:
            status, content_type = 404, "text/plain; charset=utf-8"
            body = b"not found: try /healthz, /readyz or /metrics\n"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # Probes arrive every few seconds; keep them out of the worker's log.
        log.debug("http: %s", format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], metrics: WorkerMetrics, live: Check, ready: Check) -> None:
        super().__init__(address, _Handler)
        self.metrics = metrics
        self.live = live
        self.ready = ready


class HealthServer:
    """Serves /healthz (liveness), /readyz (readiness) and /metrics from a background thread.

    ``live`` and ``ready`` return ``(healthy, details)``; 200 when healthy,
    503 otherwise, with the details as JSON. ``port`` 0 picks a free port
    (see :attr:`port`).
    """

    def __init__(self, host: str, port: int, *, metrics: WorkerMetrics, live: Check, ready: Check) -> None:
        self._server = _Server((host, port), metrics, live, ready)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}"  # noqa: S104

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="commproc-http",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
