"""``python -m exam_client``: help, and a clear exit 2 when the server cannot be reached."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from tests.clikit import module_process

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return module_process("exam_client", env, *args, timeout=timeout)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_help() -> None:
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for option in (
        "--server",
        "--password",
        "--id-number",
        "--video",
        "--phone-video",
        "--loop",
        "--duration",
        "--quiet",
    ):
        assert option in result.stdout


def test_unreachable_server_exits_2_with_one_line(media_dir: Path) -> None:
    port = closed_port()
    video = media_dir / "clips" / "center_focus.mp4"
    result = run_cli(
        "--server", f"http://127.0.0.1:{port}",
        "--password", "PW",
        "--id-number", "110101199001011234",
        "--video", str(video),
        "--duration", "5",
    )  # fmt: skip
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "cannot reach the server" in lines[0]
    assert f"127.0.0.1:{port}" in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_video_file_exits_2(tmp_path: Path) -> None:
    result = run_cli(
        "--server", f"http://127.0.0.1:{closed_port()}",
        "--password", "PW",
        "--id-number", "110101199001011234",
        "--video", str(tmp_path / "missing.webm"),
    )  # fmt: skip
    assert result.returncode == 2
    assert "video file not found" in result.stderr
    assert "Traceback" not in result.stderr
