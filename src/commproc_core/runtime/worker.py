"""The long-running worker: pollers per channel queue, graceful shutdown, backoff, health.

Each channel processor gets ``pollers`` threads. A poller receives a batch
(long polling with the channel's ``wait_time``), hands it to
``processor.process_batch`` (one transaction, then DeleteMessageBatch), and
loops. A receive or batch that fails puts that poller into exponential
backoff with jitter; the other pollers, and every other channel, go on.

Starting checks every queue and the store once (see
:mod:`~commproc_core.runtime.startup`): a problem stops the start-up, naming
each, unless ``allow_degraded`` is set; then ``/readyz`` reports the failing
pollers, the channels that did not load and the store, with a reason each,
and the worker logs each change of readiness once.

Stopping (SIGTERM, SIGINT or :meth:`Worker.stop`) stops receiving. A receive
already in flight cannot be cut short, so a poller finishes it, processes and
acknowledges what it returned, and exits: shutdown takes at most the
channel's ``wait_time`` plus one batch. The worker says what it waits for,
and a second signal stops waiting at once. The default 20 s wait keeps empty
receives (and their cost) low; a shorter ``wait_time`` makes shutdown faster
at the price of more empty receives. Both must stay well below the
visibility timeout, and ``shutdown_timeout`` bounds the whole drain.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import FrameType
from typing import Any

import attrs

from commproc_core.errors import CommprocError, ConfigError, QueueError
from commproc_core.ports import ChannelProcessor, Store
from commproc_core.redact import redact
from commproc_core.runtime.masking import mask_urls
from commproc_core.runtime.metrics import HealthServer, WorkerMetrics, create_metrics
from commproc_core.runtime.settings import WorkerSettings, channel_overrides
from commproc_core.runtime.startup import (
    ChannelProblem,
    StartupError,
    build_processors,
    error_code,
    load_channels,
    load_object,
    preflight,
    queue_name,
    stored_channels,
)
from commproc_core.runtime.worker_state import PollerState, QuietProbe, ReadinessLog, waiting_for

__all__ = ["Worker", "build_processors", "load_object", "queue_name", "stored_channels"]

log = logging.getLogger("commproc.worker")

#: Pause after an empty receive when a channel polls with wait_time 0, so an
#: idle worker does not spin.
IDLE_PAUSE = 0.5
#: While stopping, how often the worker says what it still waits for (seconds).
DRAIN_NOTE_INTERVAL = 5.0

_SIGNAL_NAMES: dict[int, str] = {int(signal.SIGTERM): "SIGTERM", int(signal.SIGINT): "SIGINT (Ctrl-C)"}


class Worker:
    """Polls every processor's queue with ``pollers`` threads each until stopped.

    ``store`` is used for readiness (defaults to the first processor's).
    ``metrics`` defaults to :func:`~commproc_core.runtime.metrics.create_metrics`
    when ``metrics_port`` is set, else to nothing. With a ``dispatcher``
    (an :class:`~commproc_core.services.outbox.OutboxDispatcher`) a thread sends the
    outbox every ``outbox_interval`` seconds while it is empty, continuously
    while it is not. With ``owns_store`` (as :meth:`from_settings` sets it)
    :meth:`drain` closes the store too.

    :meth:`start` first asks every queue (those with a ``check`` method, as
    :class:`~commproc_core.queues.SQSQueue` has) and the store to answer. Any
    problem, and any channel in ``down`` (channels that did not load), raises
    :class:`~commproc_core.runtime.startup.StartupError` unless
    ``allow_degraded`` is set; then the worker starts and ``/readyz`` reports them.
    """

    def __init__(
        self,
        processors: Sequence[ChannelProcessor],
        *,
        store: Store | None = None,
        pollers: int = 1,
        shutdown_timeout: float = 30.0,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        metrics: WorkerMetrics | None = None,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        depth_interval: float = 30.0,
        dispatcher: Any = None,
        outbox_interval: float = 1.0,
        owns_store: bool = False,
        allow_degraded: bool = False,
        down: Sequence[ChannelProblem] = (),
    ) -> None:
        if not processors:
            raise ConfigError("the worker has no channels to poll")
        if pollers < 1:
            raise ConfigError(f"pollers must be at least 1, got {pollers}")
        self.processors = list(processors)
        self.store: Store = store if store is not None else self.processors[0].store
        self.pollers_per_queue = pollers
        self.shutdown_timeout = shutdown_timeout
        self.backoff_base = backoff_base
        self.backoff_max = max(backoff_max, backoff_base)
        if metrics is None:
            metrics = create_metrics() if metrics_port is not None else WorkerMetrics()
        self.metrics = metrics
        self.depth_interval = depth_interval
        self.dispatcher = dispatcher
        self.outbox_interval = outbox_interval
        self.allow_degraded = allow_degraded
        #: Channels that did not load: reported by /readyz for as long as the worker runs.
        self.down: tuple[ChannelProblem, ...] = tuple(down)
        self._owns_store = owns_store
        self._metrics_address = None if metrics_port is None else (metrics_host, metrics_port)
        self.http: HealthServer | None = None
        self._stopping = threading.Event()
        self._signals = 0
        self._last_signal: int | None = None
        self._pollers: list[PollerState] = []
        self._helpers: list[threading.Thread] = []
        self._started = False
        self._readiness_log = ReadinessLog()
        self._quiet_probe = QuietProbe()

    # -- building from settings ---------------------------------------------------

    @classmethod
    def from_settings(cls, settings: WorkerSettings, *, store: Store | None = None) -> Worker:
        """A worker for ``settings``: store, SQS queues, channels, sender, metrics endpoint.

        Every configured channel must load (or ``allow_degraded`` be set);
        the store must exist with a current schema (``commproc db upgrade``).
        """
        from commproc_core.factory import ProcessorFactory

        owns_store = store is None
        if store is None:
            from commproc_core.runtime.database import open_database, resolve_target

            store = open_database(
                resolve_target(settings.database_url, settings.schema, settings.table_prefix)
            )
        try:
            sender = load_object(settings.sender)() if settings.sender else None
            factory = ProcessorFactory(store, queue_factory=_sqs_factory(settings), sender=sender)
            for name, target in settings.processors.items():
                factory.register_processor(name, load_object(target))
            specs = settings.channels or stored_channels(store)
            processors, problems = load_channels(factory, specs, channel_overrides(settings))
            if not processors and not problems:
                raise ConfigError(
                    "no channel to poll: add one with `commproc channels add TYPE QUEUE_URL`, "
                    "or pass --channel TYPE=QUEUE_URL or a [[channels]] table in --config"
                )
            if problems and (not settings.allow_degraded or not processors):
                for processor in processors:
                    processor.close()
                raise StartupError(problems)
            dispatcher = None
            if sender is not None:
                from commproc_core.services.outbox import OutboxDispatcher

                dispatcher = OutboxDispatcher(store, sender)
            return cls(
                processors,
                store=store,
                pollers=settings.pollers,
                shutdown_timeout=settings.shutdown_timeout,
                backoff_base=settings.backoff_base,
                backoff_max=settings.backoff_max,
                metrics_port=settings.metrics_port,
                metrics_host=settings.metrics_host,
                depth_interval=settings.depth_interval,
                dispatcher=dispatcher,
                outbox_interval=settings.outbox_interval,
                owns_store=owns_store,
                allow_degraded=settings.allow_degraded,
                down=problems,
            )
        except BaseException:
            if owns_store:
                store.close()
            raise

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Check queues and store, then start the pollers (and outbox, depth sampler, HTTP server)."""
        if self._started:
            raise RuntimeError("a Worker starts once")
        problems = preflight(self.processors, self.store)
        if (problems or self.down) and not self.allow_degraded:
            raise StartupError([*self.down, *problems])
        self._started = True
        logging.getLogger("commproc.store").addFilter(self._quiet_probe)
        for problem in [*self.down, *problems]:
            log.error("starting degraded: %s", problem)
        if self._metrics_address is not None:
            host, port = self._metrics_address
            try:
                self.http = HealthServer(
                    host, port, metrics=self.metrics, live=self.liveness, ready=self.readiness
                )
            except OSError as exc:
                raise ConfigError(
                    f"cannot serve health and metrics on {host}:{port}: {exc.strerror or exc}"
                ) from exc
            self.http.start()
            log.info("health and metrics on %s (/healthz /readyz /metrics)", self.http.url)
        failing = {(p.channel, p.queue): p for p in problems}
        for processor in self.processors:
            channel = str(getattr(processor, "channel_type", "") or type(processor).__name__)
            queue = queue_name(processor.queue_url)
            for index in range(self.pollers_per_queue):
                poller = PollerState(processor, channel, queue, index)
                known = failing.get((channel, queue))
                if known is not None:
                    # Down from the start: /readyz says so before the first retry does.
                    poller.fail(known.reason, known.reason)
                poller.thread = threading.Thread(
                    target=self._poll, args=(poller,), name=f"commproc-{channel}-{index}", daemon=True
                )
                self._pollers.append(poller)
        for poller in self._pollers:
            assert poller.thread is not None
            poller.thread.start()
        if self.dispatcher is not None:
            self._helper(self._dispatch_outbox, "commproc-outbox")
        if self.metrics.enabled:
            self._helper(self._sample_depths, "commproc-depth")
        log.info(
            "worker started: %d channel(s), %d poller(s) each: %s",
            len(self.processors),
            self.pollers_per_queue,
            ", ".join(f"{p.channel}:{p.queue}" for p in self._pollers[:: self.pollers_per_queue]),
        )

    def _helper(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._helpers.append(thread)
        thread.start()

    def stop(self) -> None:
        """Ask the worker to stop receiving; in-flight batches finish (see :meth:`drain`)."""
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def waiting_for(self) -> str:
        """What the worker's threads are busy with, in words (what a stop waits for)."""
        return waiting_for(self._pollers)

    def drain(self, timeout: float | None = None) -> bool:
        """Stop, wait for in-flight batches, release resources; False if time ran out first.

        Says every few seconds what it still waits for; a second SIGTERM or
        SIGINT stops the wait at once.
        """
        self.stop()
        deadline = time.monotonic() + (self.shutdown_timeout if timeout is None else timeout)
        threads = [p.thread for p in self._pollers if p.thread is not None] + self._helpers
        next_note = time.monotonic() + DRAIN_NOTE_INTERVAL
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline and self._signals < 2:
            next(t for t in threads if t.is_alive()).join(timeout=0.1)
            if time.monotonic() >= next_note:
                next_note += DRAIN_NOTE_INTERVAL
                left = max(0, round(deadline - time.monotonic()))
                log.info("still stopping, waiting for %s (gives up in %d s)", self.waiting_for(), left)
        stuck = [t.name for t in threads if t.is_alive()]
        if stuck and self._signals >= 2:
            log.warning(
                "second signal: stopped without waiting for %s; their messages return to the queue "
                "after the visibility timeout and are processed again (nothing is lost or applied twice)",
                stuck,
            )
        elif stuck:
            log.error(
                "shutdown gave up waiting for %s; their messages return after the visibility timeout", stuck
            )
        if self.http is not None:
            self.http.stop()
        logging.getLogger("commproc.store").removeFilter(self._quiet_probe)
        for processor in self.processors:
            try:
                processor.close()
            except Exception as exc:
                log.warning("closing the %s processor failed: %s", processor.channel_type, type(exc).__name__)
        if self._owns_store and not stuck:
            self.store.close()
        return not stuck

    def run(self, *, handle_signals: bool = True) -> int:
        """Start, run until SIGTERM/SIGINT (or :meth:`stop`), drain; 0 on a clean stop, 1 otherwise.

        A second signal during the drain gives up waiting.
        """
        previous = self._install_signals() if handle_signals else {}
        try:
            try:
                self.start()
            except BaseException:
                self.drain(timeout=1)  # release what was set up (store, HTTP server)
                raise
            while not self._stopping.is_set():
                if self._signals:
                    self._announce_stop()
                    self.stop()
                    break
                time.sleep(0.1)
            clean = self.drain()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        log.info("worker stopped%s", "" if clean else " before in-flight work finished")
        return 0 if clean else 1

    def _announce_stop(self) -> None:
        name = _SIGNAL_NAMES.get(self._last_signal or 0, "a signal")
        again = "Ctrl-C" if self._last_signal == signal.SIGINT else "the signal"
        log.warning(
            "stopping on %s: no new receives; waiting up to %s s for %s. A long poll cannot be cut short; "
            "send %s again to stop at once (unfinished batches then return to their queues)",
            name,
            f"{self.shutdown_timeout:g}",
            self.waiting_for(),
            again,
        )

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def on_signal(signum: int, frame: FrameType | None) -> None:
            # Only counters: taking a lock (Event.set) inside a signal handler can
            # deadlock with the interrupted main thread; the run loop acts on it.
            del frame
            self._signals += 1
            self._last_signal = signum

        return {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

    # -- health ---------------------------------------------------------------------------

    def _poller_status(self) -> dict[str, int]:
        alive = sum(1 for p in self._pollers if p.thread is not None and p.thread.is_alive())
        failing = sum(1 for p in self._pollers if p.failures)
        return {"total": len(self._pollers), "alive": alive, "failing": failing, "down": len(self.down)}

    def liveness(self) -> tuple[bool, Mapping[str, Any]]:
        """Healthy while every poller thread runs (or the worker is stopping)."""
        status = self._poller_status()
        healthy = self._started and (self.stopping or status["alive"] == status["total"])
        return healthy, {"pollers": status, "stopping": self.stopping}

    def readiness(self) -> tuple[bool, Mapping[str, Any]]:
        """Ready when every poller runs and receives, every channel loaded, and the store answers.

        The details list each problem: a failing poller with its channel,
        queue, error code and since when; a channel that did not load; the
        store's error code. Each change of readiness is logged once.
        """
        healthy, details = self.liveness()
        try:
            with self._quiet_probe:
                self.store.ping()
            store_state = "ok"
        except CommprocError as exc:
            store_state = getattr(exc, "code", "unavailable")
        problems = [p.problem() for p in self._pollers if p.failures]
        problems += [
            {"channel": d.channel, "queue": d.queue, "poller": None, "reason": d.reason, "error": None}
            for d in self.down
        ]
        ready = healthy and not self.stopping and store_state == "ok" and not problems
        self._readiness_log.note(ready, problems, store_state, self.stopping)
        return ready, {**details, "store": store_state, "problems": problems}

    # -- the threads --------------------------------------------------------------------

    def _poll(self, poller: PollerState) -> None:
        processor = poller.processor
        settings = processor.settings
        try:
            while not self._stopping.is_set():
                poller.doing("receiving")
                try:
                    messages = processor.receive_messages(
                        max_messages=settings.batch_size, wait_time=settings.wait_time
                    )
                except Exception as exc:
                    self._trouble(poller, error_code(exc), exc)
                    continue
                if not messages:
                    self._recovered(poller)
                    if settings.wait_time == 0:
                        poller.doing("idle")
                        self._stopping.wait(IDLE_PAUSE)
                    continue
                # Even when a stop came during the receive, these messages are
                # invisible to everyone else now: finish them rather than strand them.
                poller.doing("processing", len(messages))
                try:
                    report = processor.process_batch(messages)
                except Exception as exc:
                    self._trouble(poller, error_code(exc), exc)
                    continue
                poller.batches += 1
                self.metrics.batch(poller.channel, poller.queue, messages, report)
                if report.stats.retried == len(messages):
                    # Nothing of the batch was applied (store down, say): back off
                    # rather than receive and release messages in a tight loop.
                    self._trouble(poller, report.outcomes[0].reason or "retry", None)
                else:
                    self._recovered(poller)
        finally:
            poller.doing("stopped")

    def backoff_delay(self, failures: int) -> float:
        """Exponential delay for the ``failures``-th consecutive failure, capped, with jitter."""
        ceiling: float = min(self.backoff_max, self.backoff_base * 2.0 ** min(failures - 1, 30))
        # "Equal jitter": never below half the ceiling, so backoff really grows,
        # while pollers that failed together spread out.
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 (jitter, not security)

    def _trouble(self, poller: PollerState, code: str, exc: BaseException | None) -> None:
        due = poller.fail(code, type(exc).__name__ if exc is not None else code)
        self.metrics.poll_error(poller.channel, poller.queue, code)
        delay = self.backoff_delay(poller.failures)
        detail = (
            f": {type(exc).__name__}: {mask_urls(redact(str(exc)[:600]))[:300]}" if exc is not None else ""
        )
        # Once when the trouble starts (or changes), then a reminder now and then; each
        # retry in between only at DEBUG, so an outage does not flood the log.
        level = logging.ERROR if isinstance(exc, QueueError) or poller.failures >= 5 else logging.WARNING
        log.log(
            level if due else logging.DEBUG,
            "%s poller on %s failing (%s, %d in a row)%s; retrying in %.1fs",
            poller.name,
            poller.queue,
            code,
            poller.failures,
            detail,
            delay,
        )
        poller.doing("backoff")
        self._stopping.wait(delay)

    def _recovered(self, poller: PollerState) -> None:
        if poller.failures:
            reason = poller.reason
            failures = poller.recover()
            log.info(
                "%s poller on %s recovered after %d failure(s) (%s)",
                poller.name,
                poller.queue,
                failures,
                reason,
            )

    def _dispatch_outbox(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                counts = self.dispatcher.dispatch()
            except Exception as exc:
                failures += 1
                log.warning("outbox dispatch failed: %s", type(exc).__name__)
                self._stopping.wait(self.backoff_delay(failures))
                continue
            failures = 0
            outcomes = attrs.asdict(counts)
            self.metrics.outbox(outcomes)
            if not any(outcomes.values()):
                self._stopping.wait(self.outbox_interval)

    def _sample_depths(self) -> None:
        while True:
            for processor in self.processors:
                try:
                    depth = processor.queue.approximate_depth()
                except Exception as exc:  # a host's queue may raise; the sample is only skipped
                    log.debug(
                        "depth of %s unavailable: %s", queue_name(processor.queue_url), type(exc).__name__
                    )
                    continue
                if depth is not None:
                    channel = str(processor.channel_type)
                    self.metrics.queue_depth(channel, queue_name(processor.queue_url), depth)
            if self._stopping.wait(self.depth_interval):
                return


def _sqs_factory(settings: WorkerSettings) -> Callable[[str], Any]:
    def make(queue_url: str) -> Any:
        from commproc_core.queues import SQSQueue

        return SQSQueue(queue_url, region_name=settings.region, endpoint_url=settings.endpoint_url)

    return make
