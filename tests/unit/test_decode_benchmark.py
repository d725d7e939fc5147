"""benchmarks.decode: VP8 decoding of every frame versus keyframes only (issue 7)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import decode


def test_keyframe_only_decoding_decodes_one_picture_per_interval(
    media_dir: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "decode.json"
    args = ["--media", str(media_dir), "--seconds", "2", "--rounds", "1", "--json", str(out)]
    assert decode.main(args) == 0
    report = json.loads(out.read_text())
    rows = {(r["stream"], r["decoded"]): r for r in report["rows"]}
    assert rows[("browser-like", "every frame")]["frames_per_s"] == 10.0
    assert rows[("key every 10", "every frame")]["frames_per_s"] == 10.0
    assert rows[("key every 10", "keyframes only")]["frames_per_s"] == 1.0
    assert rows[("key every 5", "keyframes only")]["frames_per_s"] == 2.0
    for name in ("key every 10", "key every 5"):
        row = rows[(name, "every frame")]
        assert row["keyframe_bytes"] > row["interframe_bytes"] > 0
        assert 100 < row["kbps"] < 2000  # near the 500 kbps CBR target
    printed = capsys.readouterr().out
    assert "| key every 10 | keyframes only |" in printed


def test_a_media_directory_without_clips_is_refused(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "labels.json").write_text(json.dumps({"images": []}))
    assert decode.main(["--media", str(tmp_path)]) == 2
    assert "--clip" in capsys.readouterr().err
