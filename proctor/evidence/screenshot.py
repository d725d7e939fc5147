"""Annotated screenshots: the frame an alert fired on, with what the detectors saw.

Drawing only; detection lives in ``proctor.vision``. OpenCV 5's text renderer draws any
Unicode title (names in any script) with a CJK font registered as its fallback
(:mod:`proctor.evidence.fonts`); without one, Chinese characters come out as "?".
Times are written in the sitting's time zone, with its UTC offset.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import cv2
import numpy as np

from proctor.evidence import fonts
from proctor.vision.types import Observation

_COLOURS: dict[str, tuple[int, int, int]] = {  # BGR
    "face": (80, 220, 80),
    "person": (230, 160, 40),
    "cell phone": (40, 40, 240),
    "laptop": (200, 60, 200),
    "tv": (200, 60, 200),
    "keyboard": (160, 80, 200),
    "remote": (60, 120, 240),
    "book": (40, 200, 230),
}
_OTHER = (40, 120, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def zone(name: str | None) -> tzinfo:
    """The time zone called ``name`` (IANA, e.g. "Asia/Shanghai"); UTC for "" or None."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def caption_time(ts: float, tz: tzinfo = UTC) -> str:
    """ "2026-12-06 17:20:03 UTC+08:00" (the offset of ``tz`` at that moment)."""
    local = datetime.fromtimestamp(ts, tz)
    offset = local.strftime("%z")
    if offset in ("+0000", ""):
        return local.strftime("%Y-%m-%d %H:%M:%S UTC")
    return local.strftime("%Y-%m-%d %H:%M:%S") + f" UTC{offset[:3]}:{offset[3:]}"


def annotate(
    frame_bgr: np.ndarray, observation: Observation, title: str, tz: tzinfo = UTC
) -> np.ndarray:
    """A copy of ``frame_bgr`` with each detection's box, label and score, each head pose
    (yaw and pitch under its face), and a title bar across the top holding ``title`` (any
    script), the observation's time in ``tz`` and what is wrong with the picture (dark,
    blocked, ...).

    Boxes are in the pixels of the frame the detectors saw (``observation.width`` x
    ``observation.height``) and are rescaled if ``frame_bgr`` has another size. A grey
    frame comes back as BGR.
    """
    fonts.ensure()
    out = _as_bgr(frame_bgr).copy()
    height, width = out.shape[:2]
    sx = width / observation.width if observation.width > 0 else 1.0
    sy = height / observation.height if observation.height > 0 else 1.0
    unit = max(min(width, height) / 480.0, 0.5)  # scale of lines and text
    thickness = max(1, round(2 * unit))
    font_scale = 0.5 * unit

    for det in observation.detections:
        x1, y1, x2, y2 = det.box
        p1 = (round(x1 * sx), round(y1 * sy))
        p2 = (round(x2 * sx), round(y2 * sy))
        colour = _COLOURS.get(det.label, _OTHER)
        cv2.rectangle(out, p1, p2, colour, thickness, cv2.LINE_AA)
        for kx, ky in det.keypoints:
            cv2.circle(out, (round(kx * sx), round(ky * sy)), thickness, colour, -1, cv2.LINE_AA)
        _label(out, f"{det.label} {det.score:.2f}", p1, colour, font_scale, thickness)

    for pose in observation.poses:
        x1, _, _, y2 = pose.box
        corner = (round(x1 * sx), round(y2 * sy))
        text = f"yaw {pose.yaw:+.0f} pitch {pose.pitch:+.0f}"
        _label(out, text, corner, _COLOURS["face"], font_scale, thickness, below=True)

    text = f"{title}  |  {caption_time(observation.ts, tz)}"
    if observation.quality is not None and observation.quality.problems:
        text += "  |  picture " + ", ".join(sorted(observation.quality.problems))
    (_, text_h), baseline = cv2.getTextSize(text, _FONT, font_scale, thickness)
    bar_h = min(height, text_h + baseline + 2 * thickness + 4)
    out[:bar_h] = (out[:bar_h] * 0.25).astype(out.dtype)  # darken: readable on any frame
    cv2.putText(
        out,
        text,
        (thickness + 4, bar_h - baseline - thickness),
        _FONT,
        font_scale,
        (255, 255, 255),
        thickness,
        cv2.LINE_AA,
    )
    return out


def encode_jpeg(frame_bgr: np.ndarray, quality: int = 85) -> bytes:
    """JPEG bytes of a BGR (or grey) frame."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1..100, got {quality}")
    ok, buf = cv2.imencode(".jpg", frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"cannot encode a frame of shape {frame_bgr.shape} as JPEG")
    return buf.tobytes()


def _label(
    img: np.ndarray,
    text: str,
    corner: tuple[int, int],
    colour: tuple[int, int, int],
    font_scale: float,
    thickness: int,
    below: bool = False,
) -> None:
    """Text on a filled tag just above ``corner`` (below it when ``below`` or at the top
    edge)."""
    (tw, th), baseline = cv2.getTextSize(text, _FONT, font_scale, thickness)
    x, y = corner
    top = y - th - baseline - 2 * thickness
    if top < 0 or below:
        top = y
    cv2.rectangle(
        img, (x, top), (x + tw + 2 * thickness, top + th + baseline + 2 * thickness), colour, -1
    )
    cv2.putText(
        img,
        text,
        (x + thickness, top + th + thickness),
        _FONT,
        font_scale,
        (0, 0, 0),
        thickness,
        cv2.LINE_AA,
    )


def _as_bgr(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    return frame
