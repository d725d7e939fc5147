"""Evidence files on the local disk: atomic writes, content hashes, no path escapes.

Layout: ``root/<part>/<part>/.../<kind>-<UTC time>-<sha256 prefix>.<ext>``, e.g.
``sitting-1/candidate-3/absent-20240501T093012.250000Z-3fa1c2d4e5b6.jpg``. A file is
written to a temporary name in its directory, flushed to disk, then linked to its final
name, which fails rather than overwrites if that name exists: no reader ever sees a
partial file and nothing stored is replaced. Safe to use from several threads and
processes sharing ``root``.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_EXT = re.compile(r"^[A-Za-z0-9]{1,10}$")
_MAX_TRIES = 1000


@dataclass(frozen=True)
class StoredFile:
    """Where a piece of evidence was stored and what it was."""

    relpath: str  # POSIX path relative to the storage root
    sha256: str  # hex digest of the content
    size: int  # bytes
    captured_at: datetime  # when the evidence was captured (UTC)


class EvidenceStorage:
    """Evidence files under ``root`` (created on first save)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def save(
        self,
        parts: tuple[str, ...],
        kind: str,
        data: bytes,
        ext: str = "jpg",
        captured_at: datetime | None = None,
    ) -> StoredFile:
        """Store ``data`` under ``root/parts...`` and return its record.

        ``parts`` are directory names such as ``("sitting-1", "candidate-3")``; they,
        ``kind`` and ``ext`` must be plain names (letters, digits, ``.``, ``_``, ``-``; no
        separators, not starting with a dot) or ``ValueError`` is raised. ``captured_at``
        must be timezone-aware; it defaults to now.
        """
        for name in (*parts, kind):
            if not _SEGMENT.match(name):
                raise ValueError(f"not a safe file name part: {name!r}")
        if not _EXT.match(ext):
            raise ValueError(f"not a safe file extension: {ext!r}")
        if captured_at is None:
            captured_at = datetime.now(UTC)
        elif captured_at.tzinfo is None:
            raise ValueError("captured_at must be timezone-aware")
        captured_at = captured_at.astimezone(UTC)
        digest = hashlib.sha256(data).hexdigest()

        directory = self.root.joinpath(*parts)
        directory.mkdir(parents=True, exist_ok=True)
        stem = f"{kind}-{captured_at:%Y%m%dT%H%M%S.%fZ}-{digest[:12]}"
        tmp = _write_temp(directory, data)
        try:
            name = _link_unique(tmp, directory, stem, ext)
        finally:
            tmp.unlink(missing_ok=True)
        relpath = PurePosixPath(*parts, name).as_posix()
        return StoredFile(relpath=relpath, sha256=digest, size=len(data), captured_at=captured_at)

    def temp_file(self, parts: tuple[str, ...]) -> Path:
        """A new empty temporary file in ``root/parts...`` (``.tmp-*.part``, never an
        evidence name) for content written piece by piece, then :meth:`adopt`-ed."""
        for name in parts:
            if not _SEGMENT.match(name):
                raise ValueError(f"not a safe file name part: {name!r}")
        directory = self.root.joinpath(*parts)
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".part")
        os.close(fd)
        return Path(name)

    def adopt(
        self,
        tmp: Path,
        kind: str,
        ext: str,
        captured_at: datetime,
    ) -> StoredFile:
        """Store the finished temporary file ``tmp`` (from :meth:`temp_file`) under its
        evidence name, as :meth:`save` names it; ``tmp`` is gone afterwards, also when this
        fails (e.g. the disk is full)."""
        try:
            if not _SEGMENT.match(kind):
                raise ValueError(f"not a safe file name part: {kind!r}")
            if not _EXT.match(ext):
                raise ValueError(f"not a safe file extension: {ext!r}")
            if captured_at.tzinfo is None:
                raise ValueError("captured_at must be timezone-aware")
            captured_at = captured_at.astimezone(UTC)
            directory = tmp.parent.resolve()
            root = self.root.resolve()
            if not directory.is_relative_to(root) or not tmp.name.startswith(".tmp-"):
                raise ValueError(f"not a temporary evidence file: {tmp}")
            with open(tmp, "rb+") as f:
                digest = hashlib.file_digest(f, "sha256").hexdigest()
                size = os.fstat(f.fileno()).st_size
                os.fsync(f.fileno())
            stem = f"{kind}-{captured_at:%Y%m%dT%H%M%S.%fZ}-{digest[:12]}"
            name = _link_unique(tmp, directory, stem, ext)
        finally:
            tmp.unlink(missing_ok=True)
        relpath = (directory / name).relative_to(root).as_posix()
        return StoredFile(relpath=relpath, sha256=digest, size=size, captured_at=captured_at)

    def open(self, relpath: str) -> Path:
        """The absolute path of a stored file.

        Raises ``ValueError`` if ``relpath`` is absolute or leads outside the root (through
        ``..`` or a symlink), ``FileNotFoundError`` if no such file is stored.
        """
        if not relpath or PurePosixPath(relpath).is_absolute() or Path(relpath).is_absolute():
            raise ValueError(f"evidence path must be relative to the storage root: {relpath!r}")
        root = self.root.resolve()
        path = (root / relpath).resolve()
        if not path.is_relative_to(root) or path == root:
            raise ValueError(f"evidence path escapes the storage root: {relpath!r}")
        if not path.is_file():
            raise FileNotFoundError(f"no evidence file {relpath!r}")
        return path

    def find(self, relpath: str) -> Path | None:
        """The absolute path of a stored file, or None when it is missing or ``relpath``
        is not a path inside the storage (see :meth:`open`)."""
        try:
            return self.open(relpath)
        except (ValueError, FileNotFoundError):
            return None


def _write_temp(directory: Path, data: bytes) -> Path:
    fd, name = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def _link_unique(tmp: Path, directory: Path, stem: str, ext: str) -> str:
    """Hard-link ``tmp`` to the first free name ``stem[-n].ext``; return that name."""
    for n in range(_MAX_TRIES):
        name = f"{stem}.{ext}" if n == 0 else f"{stem}-{n}.{ext}"
        target = directory / name
        try:
            os.link(tmp, target)
        except FileExistsError:
            continue
        except OSError:
            # a filesystem without hard links: rename, checking for a clash just before
            if target.exists():
                continue
            os.replace(tmp, target)
        _fsync_dir(directory)
        return name
    raise FileExistsError(f"no free name for {stem}.{ext} in {directory}")


def _fsync_dir(directory: Path) -> None:
    """Make the new directory entry durable (POSIX; a no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
