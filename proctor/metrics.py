"""Prometheus metrics, exposed at /metrics.

With several worker processes behind one address (``proctor serve --workers N``) a
request to /metrics reaches any one of them, so they run in prometheus_client's
multiprocess mode: ``proctor serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at an empty
directory before the workers start, each worker writes its values there, and
:func:`exposition` sums every worker's (the live streams gauge: of the workers alive)."""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own setting

FRAMES_ANALYSED = Counter("proctor_frames_analysed_total", "Frames analysed", ["view"])
ANALYSIS_SECONDS = Histogram(
    "proctor_analysis_seconds",
    "Wall time of one frame's analysis (decode to observation)",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
)
ANALYSIS_LAG_SECONDS = Histogram(
    "proctor_analysis_lag_seconds",
    "Age of a frame when its analysis finished",
    buckets=(0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
)
ALERTS = Counter("proctor_alerts_total", "Alerts raised", ["type"])
STREAMS = Gauge(
    "proctor_streams", "Media streams being received", ["view"], multiprocess_mode="livesum"
)
FRAMES_RECEIVED = Counter(
    "proctor_frames_received_total", "Video frames received and decoded", ["view"]
)
FRAMES_DROPPED = Counter(
    "proctor_frames_dropped_total",
    "Decoded frames dropped because the server fell behind (bounded queues)",
    ["kind"],
)
STAGE_CPU = Counter(
    "proctor_stage_cpu_seconds_total",
    "CPU time of the analysis thread per stage (convert, detect, encode)",
    ["stage"],
)

RECORDING_SEGMENTS = Counter(
    "proctor_recording_segments_total",
    "Recorded WebM segments stored (issue 22), and those lost (disk full, backlog)",
    ["outcome"],
)
RECORDING_BYTES = Counter(
    "proctor_recording_bytes_total", "Bytes of recorded segments stored", ["view"]
)
RECORDING_CPU = Counter(
    "proctor_recording_cpu_seconds_total", "CPU time of the recording thread (muxing)"
)


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def exposition() -> bytes:
    """The text /metrics serves: this process's metrics, or in multiprocess mode every
    worker's, summed."""
    if not multiprocess_mode():
        return generate_latest()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry)


def worker_exit() -> None:
    """A worker stops: its live gauges stop counting (multiprocess mode only)."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(os.getpid())
