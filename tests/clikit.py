"""``proctor`` commands from a test, as an operator runs them (a subprocess) or, quicker, in
this process; and one database transaction run from synchronous test code."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import sys
from typing import Any

from tests.serverproc import ROOT


def module_process(
    module: str, env: dict[str, str], *argv: str, timeout: float = 120
) -> subprocess.CompletedProcess:
    """``python -m MODULE ARGV`` in a subprocess from the repository's root, with exactly
    ``env`` (text output captured)."""
    return subprocess.run(
        [sys.executable, "-m", module, *argv],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def proctor_process(
    env: dict[str, str], *argv: str, timeout: float = 120
) -> subprocess.CompletedProcess:
    """``proctor ARGV`` in a subprocess with exactly ``env`` (text output captured)."""
    return module_process("proctor", env, *argv, timeout=timeout)


def proctor_here(env: dict[str, str], *argv: str) -> tuple[int, str]:
    """``proctor ARGV`` in this process with ``env`` added to the environment (put back
    after): its exit code and what it printed."""
    from proctor import cli

    saved = {k: os.environ.get(k) for k in env}
    out = io.StringIO()
    try:
        os.environ.update(env)
        with contextlib.redirect_stdout(out):
            code = cli.main(list(argv))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return code, out.getvalue()


def run_db(url: str, work: Any, **database: Any) -> Any:
    """``await work(session)`` in one transaction of a Database(url, **database)."""
    from proctor.store.db import Database

    async def go() -> Any:
        db = Database(url, **database)
        try:
            async with db.transaction() as session:
                return await work(session)
        finally:
            await db.dispose()

    return asyncio.run(go())
