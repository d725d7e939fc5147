"""The identity check's worker processes die with the server process that started them,
even when it is killed (SIGKILL): a killed worker must not leave ~170 MB processes behind
(proctor.vision.workers.die_with_parent)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.waiting import eventually

SCRIPT = """
import asyncio, multiprocessing, sys
from pathlib import Path
from proctor.vision.identity_pool import IdentityChecker

async def main():
    checker = IdentityChecker(Path(sys.argv[1]))
    assert await checker.warm_up()
    print(*[p.pid for p in multiprocessing.active_children()], flush=True)
    await asyncio.sleep(3600)  # noqa: sleep-ok - the "server" idles until it is killed

asyncio.run(main())
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


async def test_identity_workers_die_with_a_killed_server(models_dir: Path) -> None:
    # (not asyncio's subprocess: its wait() also waits for the pipe, which a surviving
    # child would hold open)
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(models_dir)], stdout=subprocess.PIPE)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 120)
        children = [int(p) for p in line.split()]
        assert children and all(alive(p) for p in children)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()

    async def gone() -> bool | None:
        return True if not any(alive(p) for p in children) else None

    await eventually(gone, 20, "the identity workers of the killed process exit")
