"""Evidence captions (issue 18): Chinese names and titles are drawn as glyphs with a Noto
CJK font (Debian fonts-noto-cjk, installed by tests/run.sh), not as "?"; times are written
in the sitting's time zone. Read from the pixels."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from proctor.evidence import fonts
from proctor.evidence.screenshot import annotate, caption_time, zone
from proctor.rules import RuleSettings
from proctor.vision.types import Observation

TS = datetime(2026, 12, 6, 9, 20, 3, tzinfo=UTC).timestamp()


def caption(media_dir: Path, title: str) -> np.ndarray:
    """The title bar of an evidence screenshot of a real photo."""
    frame = cv2.imread(str(media_dir / "images" / "two_people.jpg"), cv2.IMREAD_COLOR)
    frame = cv2.resize(frame, (640, 376))
    out = annotate(frame, Observation("first", TS, 640, 376), title, zone("Asia/Shanghai"))
    return out[:24]


def test_a_cjk_font_is_found_and_registered() -> None:
    path = fonts.ensure()
    assert path is not None and path.is_file(), "install fonts-noto-cjk (tests/run.sh does)"
    assert "CJK" in path.name


def test_a_chinese_name_is_drawn_as_glyphs_not_question_marks(media_dir: Path) -> None:
    assert fonts.ensure() is not None
    zhang = caption(media_dir, "More than one person / 画面多于1人 - 张伟")
    li = caption(media_dir, "More than one person / 画面多于1人 - 李娜")
    marks = caption(media_dir, "More than one person / ????1? - ??")
    # without glyphs every Chinese name would be the same "??": here each name has its own
    # pixels, and neither is the question marks' rendering
    differ = np.abs(zhang.astype(int) - li.astype(int)).max(axis=2) > 60
    assert differ.sum() > 40
    assert np.abs(zhang.astype(int) - marks.astype(int)).max(axis=2).sum() > 0
    # the characters are ink on the darkened bar: the Chinese part holds bright pixels
    ascii_only = caption(media_dir, "More than one person /")
    extra = (zhang.max(axis=2) > 120).sum() - (ascii_only.max(axis=2) > 120).sum()
    assert extra > 100


def test_a_chinese_glyph_matches_the_fonts_own_rendering() -> None:
    """The caption's glyph for 张 is the Noto font's 张 (compared with a rendering made
    with that font directly), not a fallback box or a question mark."""
    assert fonts.ensure() is not None
    size = 40

    def draw(text: str, face: cv2.FontFace | None) -> np.ndarray:
        img = np.zeros((60, 60), np.uint8)
        if face is None:
            cv2.putText(img, text, (5, 48), cv2.FONT_HERSHEY_SIMPLEX, 1.4, 255, 2)
        else:
            cv2.putText(img, text, (5, 48), 255, face, size)
        return img

    direct = cv2.FontFace(str(fonts.installed()))
    via_fallback = cv2.FontFace("sans")  # what captions use: the CJK glyph comes from "uni"
    ref, got, question = draw("张", direct), draw("张", via_fallback), draw("?", None)

    def iou(a: np.ndarray, b: np.ndarray) -> float:
        a, b = a > 128, b > 128
        return (a & b).sum() / max(1, (a | b).sum())

    assert iou(ref, got) > 0.8
    assert iou(ref, question) < 0.3


def test_times_are_written_in_the_sittings_time_zone() -> None:
    assert caption_time(TS, zone("Asia/Shanghai")) == "2026-12-06 17:20:03 UTC+08:00"
    assert caption_time(TS, zone("")) == "2026-12-06 09:20:03 UTC"
    assert RuleSettings(time_zone="Asia/Shanghai").time_zone == "Asia/Shanghai"
    with pytest.raises(ValueError, match="unknown time zone"):
        RuleSettings(time_zone="Mars/Olympus")


def test_the_server_says_when_no_cjk_font_is_found(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="proctor.evidence.fonts"):
        assert fonts.setup("/nonexistent/font.ttc") is None
    assert "no CJK font found" in caplog.text and "fonts-noto-cjk" in caplog.text
    assert fonts.setup() is not None  # back to the installed one
