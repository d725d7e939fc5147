"""The font evidence captions are drawn with: a Noto CJK font (Debian ``fonts-noto-cjk``)
registered as OpenCV 5's "uni" fallback font, so that Chinese names and alert titles are
drawn as glyphs, not "?" (OpenCV's compiled-in fonts have no CJK glyphs).

:func:`setup` is called at the server's start (it says so loudly when no font is found);
:func:`ensure` registers the first font found once, for callers outside the server
(tests, benchmarks, scripts)."""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from pathlib import Path

import cv2

log = logging.getLogger(__name__)

#: where Debian, Ubuntu, Fedora and Alpine put the Noto CJK fonts, and Noto Sans SC/Source Han
CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/opentype/source-han-sans/SourceHanSans-Regular.ttc",
)
SAMPLE = "张伟离座"  # what a usable font must draw

_lock = threading.Lock()
_installed: Path | None = None
_tried = False


def find(configured: str = "") -> Path | None:
    """The configured font file if it exists, else the first known CJK font installed, else
    what fontconfig names for Chinese (``fc-match``), else None."""
    if configured:
        path = Path(configured)
        return path if path.is_file() else None
    for name in CANDIDATES:
        if Path(name).is_file():
            return Path(name)
    if shutil.which("fc-match"):
        try:
            out = subprocess.run(
                ["fc-match", "-f", "%{file}", ":lang=zh-cn"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out and Path(out).is_file() and ("CJK" in out or "Han" in out):
            return Path(out)
    return None


def install(path: Path) -> bool:
    """Register ``path`` as OpenCV's CJK fallback font (global, all threads)."""
    global _installed
    with _lock:
        ok = bool(cv2.FontFace.setBuiltinFont("uni", str(path)))
        if ok:
            _installed = path
        return ok


def installed() -> Path | None:
    return _installed


def setup(configured: str = "") -> Path | None:
    """At start: find and register the caption font; log where it came from, or loudly that
    captions will show "?" for Chinese characters."""
    global _tried
    _tried = True
    path = find(configured)
    if path is not None and install(path):
        log.info("evidence captions: CJK font %s", path)
        return path
    log.warning(
        "evidence captions: no CJK font found%s: Chinese names and titles in evidence "
        "screenshots will be drawn as '?'. Install a Noto CJK font (Debian: apt-get install "
        "fonts-noto-cjk) or set PROCTOR_CAPTION_FONT to a .ttc/.otf/.ttf file.",
        f" at {configured}" if configured else "",
    )
    return None


def ensure() -> Path | None:
    """The registered font, registering the first one found if nobody did yet."""
    global _tried
    if _installed is None and not _tried:
        _tried = True
        path = find()
        if path is not None:
            install(path)
    return _installed
