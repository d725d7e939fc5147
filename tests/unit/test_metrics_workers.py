"""/metrics with several worker processes: every worker's values, summed (prometheus_client's
multiprocess mode, set up by ``proctor serve --workers N``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from proctor import cli
from proctor.metrics import MULTIPROC_ENV

WORKER = """
from proctor import metrics
metrics.FRAMES_RECEIVED.labels("first").inc({n})
metrics.STREAMS.labels("first").inc()
"""

EXPOSE = """
import sys
from proctor import metrics
sys.stdout.write(metrics.exposition().decode())
"""


def run(code: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in the exposition")


def test_workers_metrics_are_summed(tmp_path: Path) -> None:
    env = {**os.environ, MULTIPROC_ENV: str(tmp_path)}
    run(WORKER.format(n=7), env)
    run(WORKER.format(n=5), env)

    text = run(EXPOSE, env)

    assert value(text, "proctor_frames_received_total") == 12.0
    # the streams gauge counts live workers only: both test workers have exited without
    # being marked dead, so they still count
    assert value(text, "proctor_streams") == 2.0


def test_without_the_setting_a_process_shows_its_own() -> None:
    env = {k: v for k, v in os.environ.items() if k != MULTIPROC_ENV}
    text = run(WORKER.format(n=3) + EXPOSE, env)
    assert value(text, "proctor_frames_received_total") == 3.0


def test_serve_empties_the_operators_directory(tmp_path: Path, monkeypatch) -> None:
    stale = tmp_path / "counter_123.db"
    stale.write_bytes(b"old values")
    keep = tmp_path / "notes.txt"
    keep.write_text("not ours")
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))

    assert cli._metrics_dir() is None  # the operator's: not ours to remove

    assert not stale.exists() and keep.exists()


def test_serve_makes_a_directory_when_none_is_given(monkeypatch) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, "")  # unset for serve; restored after the test
    made = cli._metrics_dir()
    assert made == Path(os.environ[MULTIPROC_ENV])
    assert made.is_dir() and not any(made.iterdir())
    made.rmdir()
