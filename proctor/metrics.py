"""Prometheus metrics, exposed at /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
STREAMS = Gauge("proctor_streams", "Media streams being received", ["view"])
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
