"""Issue 21 item 4: Redis restarting does not blind the sockets (a real server process on
SQLite or PostgreSQL with its own real redis-server, stopped and started again during
the test): /health reports the bus, a danmaku sent during the outage is stored and
answered as pending, and after the restart the sockets opened before it are told to load
again (the page then finds the pending warning) and receive again."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from contextlib import asynccontextmanager

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.consolekit import next_message
from tests.serverproc import ServerProcess, free_port, seed
from tests.waiting import eventually

pytestmark = pytest.mark.asyncio

if shutil.which("redis-server") is None:  # pragma: no cover - CI installs it
    pytest.skip("redis-server is not installed", allow_module_level=True)


class RedisServer:
    def __init__(self, port: int, workdir) -> None:
        self.port, self.workdir, self.proc = port, workdir, None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


async def until(check, timeout: float, what: str):
    async def probe():
        return (await check()) or None

    return await eventually(probe, timeout, what)


@asynccontextmanager
async def running(database_url, tmp_path, models_dir):
    redis = RedisServer(free_port(), tmp_path)
    redis.start()
    data = tmp_path / "data"
    seeded = await seed(database_url, data)
    server = ServerProcess(
        database_url,
        data,
        models_dir,
        env_extra={
            "PROCTOR_REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
            "PROCTOR_WORKERS": "1",
        },
    )
    try:
        await asyncio.to_thread(server.start)
        yield redis, server, seeded
    finally:
        server.stop()
        redis.stop()


async def test_sockets_hear_again_after_redis_restarts(database_url, tmp_path, models_dir):
    async with (
        running(database_url, tmp_path, models_dir) as (redis, server, seeded),
        httpx.AsyncClient(base_url=server.url, timeout=20) as http,
    ):
        cid, _, idn = seeded.candidates[0]
        cand = (
            await http.post(
                "/api/candidate/login",
                json={"sitting_password": seeded.password, "id_number": idn},
            )
        ).json()["token"]
        staff = (
            await http.post(
                "/api/staff/login",
                json={"username": seeded.staff[0], "password": seeded.staff[1]},
            )
        ).json()["token"]
        h = {"authorization": f"Bearer {staff}"}
        ws_base = server.url.replace("http", "ws")

        async def danmaku(text: str) -> httpx.Response:
            return await http.post(
                f"/api/console/candidates/{cid}/danmaku", json={"text": text}, headers=h
            )

        async with (
            connect(f"{ws_base}/ws/candidate?token={cand}") as page,
            connect(f"{ws_base}/ws/console?sitting_id={seeded.sitting_id}&token={staff}") as con,
        ):
            await next_message(page, lambda m: m["type"] == "hello", 10)
            assert (await danmaku("before")).status_code == 200
            await next_message(page, lambda m: m.get("text") == "before", 10)
            await next_message(con, lambda m: m["type"] == "danmaku", 10)

            redis.stop()

            async def bus_down():
                body = (await http.get("/health")).json()
                return body if body["bus"] != "ok" else None

            down = await until(bus_down, 20, "/health to report the bus down")
            assert down["status"] == "degraded" and down["bus"].startswith("error")
            # committed and audited, only not pushed: the sender is told it is pending
            during = await danmaku("during")
            assert during.status_code == 200, during.text
            assert during.json()["pending"] is True and during.json()["text"] == "during"

            redis.start()

            async def bus_up():
                return (await http.get("/health")).json()["bus"] == "ok"

            await until(bus_up, 30, "/health to report the bus up again")

            # the page is told to load again, and what was sent meanwhile is there for it
            # (the exam page loads its unacknowledged warnings on "overflow")
            told = await next_message(page, lambda m: m["type"] == "overflow", 30)
            assert told["reason"] == "bus_reconnected"
            pending = await http.get(
                "/api/flow/warnings", headers={"authorization": f"Bearer {cand}"}
            )
            assert pending.status_code == 200, pending.text
            assert "during" in [w["text"] for w in pending.json()]

            # the subscriptions opened before the outage are back: the page and the
            # console hear the next danmaku (retried until the back-off resubscribed)
            async def delivered():
                resp = await danmaku("after")
                assert resp.status_code in (200, 503), resp.text
                if resp.status_code != 200:
                    return None
                try:
                    return await next_message(page, lambda m: m.get("text") == "after", 2)
                except TimeoutError:
                    return None

            await until(delivered, 30, "a danmaku after the restart to reach the page")
            await next_message(
                con, lambda m: m["type"] == "danmaku" and m["danmaku"]["text"] == "after", 10
            )
