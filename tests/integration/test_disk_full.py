"""Issue 21 item 9: a full disk answers a JSON 503 ``storage_full`` (not a plain-text 500).
The evidence directory is on a small tmpfs filled to the brim (needs mount rights: root,
as on the CI machine; skipped otherwise). Real app, SQLite and PostgreSQL."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
import pytest_asyncio

from tests.flowkit import FlowApp, code
from tests.serverproc import small_tmpfs

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory):
    yield from small_tmpfs(tmp_path_factory.mktemp("small-disk"), "4m")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def fa(database_url, small_disk, tmp_path_factory, models_dir):
    if database_url.startswith("sqlite"):  # the database file elsewhere: only files fill up
        database_url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'p.db'}"
    async with FlowApp.running(database_url, small_disk, models_dir) as app:
        yield app


async def test_a_full_disk_answers_a_json_503(fa: FlowApp, small_disk, media_dir) -> None:
    s = await fa.sitting(kind="formal", starts_in=timedelta(minutes=5))
    cand = await fa.login(s.password, s.candidates[0].id_number)
    await fa.walk(cand, "identity")
    filler = small_disk / "filler"
    with open(filler, "wb", buffering=0) as f:  # fill the disk
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    try:
        photo = (media_dir / "images" / "obama.jpg").read_bytes()
        resp = await cand.post("/api/flow/identity", content=photo)
        assert resp.status_code == 503, resp.text
        assert code(resp) == "storage_full"
        assert "storage is full" in resp.json()["error"]["message"]
    finally:
        os.unlink(filler)
    again = await cand.post("/api/flow/identity", content=photo)
    assert again.status_code == 200, again.text
