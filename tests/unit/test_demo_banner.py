"""The demo's banner says which detectors run, and names the missing model of each that
does not (a newcomer without models otherwise saw a quiet 'degraded' /health only)."""

from __future__ import annotations

import shutil
from pathlib import Path

from models.prepare import load_manifest, status
from proctor.cli import detectors_banner


def test_every_detector_runs_with_every_model(models_dir: Path) -> None:
    lines = detectors_banner(status(models_dir))
    assert len(lines) == 1
    running = lines[0].split(":", 1)[1].strip().split(", ")
    expected = {d for spec in load_manifest() for d in spec.used_by}
    assert set(running) == expected


def test_a_missing_model_names_the_detectors_it_stops(models_dir: Path, tmp_path: Path) -> None:
    manifest = load_manifest()
    yolox = next(spec for spec in manifest if spec.name == "yolox_nano")
    for spec in manifest:
        if spec.name != "yolox_nano":
            shutil.copy(models_dir / spec.file, tmp_path / spec.file)
    lines = detectors_banner(status(tmp_path))
    running = lines[0].split(":", 1)[1].strip().split(", ")
    assert not set(yolox.used_by) & set(running)
    stopped = [line for line in lines if "NOT RUNNING" in line]
    assert {line.split(":", 1)[1].split("(")[0].strip() for line in stopped} == set(yolox.used_by)
    assert all("yolox_nano: missing" in line for line in stopped)
    assert "proctor models prepare" in lines[-1]
