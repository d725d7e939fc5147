"""benchmarks.photo_check runs the server's identity workers on real photos and prints
the answer times (its figures are the README's; here only that it measures)."""

from __future__ import annotations

import shutil
from pathlib import Path

from benchmarks import photo_check


def test_a_few_candidates_checking_at_once(
    media_dir: Path, models_dir: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("obama.jpg", "obama2.jpg", "obama_small.jpg"):
        shutil.copy(media_dir / "images" / name, photos)
    code = photo_check.main(
        ["--photos", str(photos), "--models", str(models_dir), "--candidates", "4"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "4 candidates checking at once, 1 worker(s), model arcface_mbf" in out
    assert "median" in out and "slowest" in out
    assert photo_check.main(["--photos", str(tmp_path / "photos" / "..")]) == 2  # no photos
