"""Candidates at home (issue 20), proved in network namespaces of the test's own
(tests/netkit.py): the server behind Caddy (`tls internal`, docs/deploy/Caddyfile as it
is) and coturn (docs/deploy/turnserver.conf with the test's addresses); a candidate in a
"home" network behind NAT that lets only TCP 443 out (no UDP at all), a phone in a
"mobile" network behind another NAT. Real headless Chromium in each namespace trusts
Caddy's internal CA through its profile's NSS database (no certificate errors ignored, no
insecure-origin flags): the candidate page at https://exam.test (a non-loopback address)
gets the camera, walks to the exam and streams through the TURN relay over TLS on 443; the
phone pairs from the QR code's HTTPS link and streams; the console (in the mobile network,
through Caddy) sees both views connected and an absence alert. `proctor doctor` run from
the mobile network is all green, then names TURN with coturn stopped (and a fresh
candidate page can no longer stream from home), and Redis with Redis stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import async_playwright, expect

from tests import netkit
from tests.e2e.conftest import chromium_args
from tests.flowkit import ADMIN, INVIGILATOR, seed_exam, still_y4m
from tests.serverproc import ROOT, ServerProcess

pytestmark = pytest.mark.netns

SECRET = "netns-test-turn-secret"
PORT = 8000
REDIS_PORT = 6390
TURN_URLS = ",".join(
    [
        f"turn:{netkit.TURN_NAME}:3478?transport=udp",
        f"turn:{netkit.TURN_NAME}:3478?transport=tcp",
        f"turns:{netkit.TURN_NAME}:443?transport=tcp",
    ]
)
SITE = f"https://{netkit.WEB_NAME}"

# every RTCPeerConnection a page makes, for its selected candidate pair (test hook only)
RECORD_PCS = """
(() => {
  const Orig = window.RTCPeerConnection;
  window.__pcs = [];
  function Recorded(...args) { const pc = new Orig(...args); window.__pcs.push(pc); return pc; }
  Recorded.prototype = Orig.prototype;
  Object.setPrototypeOf(Recorded, Orig);
  window.RTCPeerConnection = Recorded;
})();
"""
SELECTED_PAIRS = """
async () => {
  const out = [];
  for (const pc of window.__pcs || []) {
    if (pc.connectionState !== 'connected') continue;
    const stats = await pc.getStats();
    let pairId = null;
    stats.forEach((r) => {
      if (r.type === 'transport' && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId;
    });
    if (!pairId) continue;
    const pair = stats.get(pairId);
    const local = stats.get(pair.localCandidateId);
    const remote = stats.get(pair.remoteCandidateId);
    out.push({ local: local.candidateType, relayProtocol: local.relayProtocol || null,
               localUrl: local.url || null, remote: remote.candidateType,
               remoteAddress: remote.address, bytesSent: pair.bytesSent });
  }
  return out;
}
"""


def _wait_file(path: Path, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear:\n{log.read_text(errors='replace')}")
        try:
            proc.wait(0.1)
        except subprocess.TimeoutExpired:
            pass


def _wait_port(ns: str, host: str, port: int, proc: subprocess.Popen, log: Path) -> None:
    probe = (
        "import socket,sys,time\n"
        "end=time.monotonic()+30; poll=0.1  # polled until the deadline\n"
        "while time.monotonic()<end:\n"
        "    try:\n"
        f"        socket.create_connection(({host!r},{port}),timeout=1).close(); sys.exit(0)\n"
        "    except OSError: time.sleep(poll)\n"
        "sys.exit(1)\n"
    )
    r = netkit.in_ns(ns, sys.executable, "-c", probe, check=False)
    if r.returncode != 0 or proc.poll() is not None:
        raise AssertionError(f"{host}:{port} not listening:\n{log.read_text(errors='replace')}")


def _coturn_conf(out: Path, cert: Path, key: Path) -> Path:
    """docs/deploy/turnserver.conf with the example addresses replaced by the test's."""
    text = (ROOT / "docs/deploy/turnserver.conf").read_text()
    for old, new in (
        ("203.0.113.20", netkit.TURN_IP),
        ("203.0.113.10", netkit.WEB_IP),
        ("exam.example.org", netkit.WEB_NAME),
        ("CHANGE-ME-a-long-random-string", SECRET),
        ("/etc/coturn/certs/turn.example.org.crt", str(cert)),
        ("/etc/coturn/certs/turn.example.org.key", str(key)),
    ):
        assert old in text, old
        text = text.replace(old, new)
    text += f"\npidfile={out / 'turnserver.pid'}\n"
    path = out / "turnserver.conf"
    path.write_text(text)
    return path


class Deployment:
    def __init__(self, tmp: Path, models_dir: Path) -> None:
        self.tmp = tmp
        self.models_dir = models_dir
        self.procs: dict[str, subprocess.Popen] = {}
        self.server: ServerProcess | None = None

    def start_coturn(self) -> None:
        log = self.tmp / "coturn.log"
        self.procs["coturn"] = netkit.popen_in(
            netkit.SRV, ["turnserver", "-c", str(self.coturn_conf)], log
        )
        for port in (3478, 443):
            _wait_port(netkit.SRV, netkit.TURN_IP, port, self.procs["coturn"], log)

    def start(self, seeded_url: str) -> None:
        netkit.Topology().build()
        tmp = self.tmp
        # Redis (the server's bus, and what /health reports)
        log = tmp / "redis.log"
        self.procs["redis"] = netkit.popen_in(
            netkit.SRV,
            ["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", ""],
            log,
        )
        _wait_port(netkit.SRV, "127.0.0.1", REDIS_PORT, self.procs["redis"], log)
        # proctor, behind Caddy (trusting 127.0.0.1 only), with TURN and Redis
        self.server = ServerProcess(
            seeded_url,
            tmp / "data",
            self.models_dir,
            port=PORT,
            host="0.0.0.0",
            connect_host=netkit.SRV_LINK_IP,
            prefix=["ip", "netns", "exec", netkit.SRV],
            env_extra={
                "PROCTOR_TRUSTED_PROXIES": "127.0.0.1",
                "PROCTOR_TURN_URLS": TURN_URLS,
                "PROCTOR_TURN_SECRET": SECRET,
                "PROCTOR_REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
                "PROCTOR_WORKERS": "1",
            },
        ).start(timeout=90)
        # Caddy: docs/deploy/Caddyfile, `tls internal`
        caddy_home = tmp / "caddy"
        env = {
            "HOME": str(caddy_home),
            "XDG_DATA_HOME": str(caddy_home / "data"),
            "XDG_CONFIG_HOME": str(caddy_home / "config"),
            "PROCTOR_SITE": netkit.WEB_NAME,
            "PROCTOR_TURN_SITE": netkit.TURN_NAME,
            "PROCTOR_CADDY_TLS": "tls internal",
            "PROCTOR_CADDY_BIND": f"bind {netkit.WEB_IP}",
            "PROCTOR_CADDY_GLOBAL": "skip_install_trust",
            "PROCTOR_CADDY_IMPORT": str(ROOT / "docs/deploy/turn-internal.caddy"),
            "PROCTOR_UPSTREAMS": f"127.0.0.1:{PORT}",
        }
        log = tmp / "caddy.log"
        self.procs["caddy"] = netkit.popen_in(
            netkit.SRV,
            [
                "caddy",
                "run",
                "--config",
                str(ROOT / "docs/deploy/Caddyfile"),
                "--adapter",
                "caddyfile",
            ],
            log,
            env,
        )
        data = caddy_home / "data" / "caddy"
        self.ca = data / "pki/authorities/local/root.crt"
        turn_dir = data / "certificates/local" / netkit.TURN_NAME
        cert, key = turn_dir / f"{netkit.TURN_NAME}.crt", turn_dir / f"{netkit.TURN_NAME}.key"
        for path in (self.ca, cert, key):
            _wait_file(path, self.procs["caddy"], log)
        _wait_port(netkit.SRV, netkit.WEB_IP, 443, self.procs["caddy"], log)
        # through Caddy from the mobile network, once its health check has seen proctor
        probe = (
            "import ssl,sys,time,urllib.request\n"
            f"ctx=ssl.create_default_context(cafile={str(self.ca)!r})\n"
            "end=time.monotonic()+30; poll=0.2  # polled until the deadline\n"
            "while time.monotonic()<end:\n"
            "    try:\n"
            f"        urllib.request.urlopen({SITE + '/health'!r},context=ctx,timeout=2)\n"
            "        sys.exit(0)\n"
            "    except Exception as e: err=e; time.sleep(poll)\n"
            "print(err); sys.exit(1)\n"
        )
        r = netkit.in_ns(netkit.MOB, sys.executable, "-c", probe, check=False)
        assert r.returncode == 0, f"{SITE} not answering: {r.stdout}\n{log.read_text()}"
        # coturn: docs/deploy/turnserver.conf
        self.coturn_conf = _coturn_conf(tmp, cert, key)
        self.start_coturn()

    def stop_part(self, name: str) -> None:
        netkit.stop(self.procs.pop(name, None))

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        for name in list(self.procs):
            self.stop_part(name)
        netkit.teardown()

    def logs(self) -> str:
        parts = []
        for name in ("caddy", "coturn", "redis"):
            path = self.tmp / f"{name}.log"
            if path.exists():
                parts.append(f"--- {name}\n" + path.read_text(errors="replace")[-3000:])
        if self.server is not None:
            parts.append("--- proctor\n" + self.server.log()[-6000:])
        return "\n".join(parts)

    def doctor(self, ns: str = netkit.MOB) -> subprocess.CompletedProcess:
        return netkit.in_ns(
            ns,
            str(Path(sys.executable).parent / "proctor"),
            "doctor",
            SITE,
            "--ca",
            str(self.ca),
            "--staff",
            f"{ADMIN[0]}:{ADMIN[1]}",
            check=False,
        )


@pytest.fixture(scope="module")
def deployment(models_dir, tmp_path_factory):
    missing = netkit.missing_tools()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the namespace test needs {missing} (tests/run.sh installs them)")
        pytest.skip(f"needs {missing}")
    import asyncio

    tmp = tmp_path_factory.mktemp("netns")
    (tmp / "data").mkdir()
    url = f"sqlite+aiosqlite:///{tmp / 'data' / 'proctor.db'}"
    sitting = asyncio.run(
        seed_exam(url, tmp / "data", kind="formal", starts_in=timedelta(minutes=-1), candidates=2)
    )
    dep = Deployment(tmp, models_dir)
    dep.sitting = sitting
    try:
        dep.start(url)
        yield dep
    except BaseException:
        print(dep.logs())
        raise
    finally:
        dep.close()


@pytest.fixture(scope="module")
def cameras(media_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("netns-cameras")
    return {
        # nobody in the picture: the absence alert
        "home": still_y4m(media_dir / "images/no_person_dog.jpg", out / "home.y4m"),
        "phone": still_y4m(media_dir / "images/findphone_floor_0.jpg", out / "phone.y4m"),
    }


async def _browser(pw, ns: str, chromium: str, camera: Path, dep: Deployment):
    home = dep.tmp / f"profile-{ns}"
    if not home.exists():
        netkit.trust_ca(home, dep.ca)  # Caddy's internal CA, trusted by this profile only
    return await pw.chromium.launch(
        executable_path=str(netkit.chromium_in(ns, chromium, dep.tmp)),
        args=chromium_args(camera),
        env={**os.environ, "HOME": str(home)},
    )


def _csp_watch(page, seen: list[str]) -> None:
    page.on(
        "console",
        lambda m: (
            seen.append(f"{page.url}: {m.text} at {m.location}")
            if "Content Security Policy" in m.text
            else None
        ),
    )


async def _walk_to_identity(page, password: str, id_number: str) -> None:
    await page.goto("/exam/")
    assert await page.evaluate("window.isSecureContext")
    await page.fill("#sitting-password", password)
    await page.fill("#id-number", id_number)
    await page.click("#login-button")
    await page.wait_for_url("**/exam/exam.html")
    await page.click("#confirm-info")
    await page.check("#pledge-read")
    await page.click("#pledge-accept")
    await expect(page.locator("#flow")).to_have_attribute("data-step", "identity")


async def test_home_candidate_and_mobile_phone_through_nat(
    deployment, cameras, chromium_path, tmp_path
):
    dep = deployment
    try:
        await _home_and_mobile(dep, cameras, chromium_path, tmp_path)
    except BaseException:
        print(dep.logs())
        raise


async def _home_and_mobile(dep, cameras, chromium_path, tmp_path) -> None:
    cand = dep.sitting.candidates[0]
    csp: list[str] = []
    async with async_playwright() as pw:
        home = await _browser(pw, netkit.HOME, chromium_path, cameras["home"], dep)
        mobile = await _browser(pw, netkit.MOB, chromium_path, cameras["phone"], dep)
        try:
            ctx = await home.new_context(base_url=SITE)
            await ctx.add_init_script(RECORD_PCS)
            page = await ctx.new_page()
            _csp_watch(page, csp)
            await _walk_to_identity(page, dep.sitting.password, cand.id_number)
            # the camera started (a secure origin) and streams to the server: from home,
            # where no UDP gets out, only through the relay over TLS on 443
            await expect(page.locator("#stream-status")).to_have_attribute(
                "data-state", "streaming", timeout=60_000
            )
            pairs = await page.evaluate(SELECTED_PAIRS)
            assert pairs, "no connected peer connection"
            assert pairs[0]["local"] == "relay", pairs
            assert pairs[0]["relayProtocol"] == "tls", pairs
            assert pairs[0]["remoteAddress"] == netkit.WEB_IP, pairs

            # no registered photo: the check goes to the invigilator, who admits
            await page.click("#capture-photo")
            await expect(page.locator("#identity-wait")).to_be_visible(timeout=30_000)
            async with httpx.AsyncClient(base_url=dep.server.url, timeout=20) as http:
                login = await http.post(
                    "/api/staff/login", json={"username": ADMIN[0], "password": ADMIN[1]}
                )
                auth = {"Authorization": f"Bearer {login.json()['token']}"}
                r = await http.post(
                    f"/api/invigilate/candidates/{cand.id}/admit",
                    json={"reason": "netns"},
                    headers=auth,
                )
                assert r.status_code == 200, r.text
            await expect(page.locator("#flow")).to_have_attribute(
                "data-step", "phone", timeout=20_000
            )

            # the phone: the QR code's link is the HTTPS address, opened on mobile data
            link = page.locator("#phone-link")
            await expect(page.locator("#phone-qr svg")).to_be_visible(timeout=10_000)
            phone_url = await link.get_attribute("href")
            assert phone_url.startswith(f"{SITE}/exam/phone.html#pair="), phone_url
            phone = await (await mobile.new_context()).new_page()
            _csp_watch(phone, csp)
            await phone.goto(phone_url)
            await expect(phone.locator("#phone-stream-status")).to_have_attribute(
                "data-state", "streaming", timeout=60_000
            )
            await expect(page.locator("#flow")).to_have_attribute(
                "data-step", "answering", timeout=60_000
            )

            # the console, from the mobile network through Caddy too
            con = await (await mobile.new_context(base_url=SITE)).new_page()
            _csp_watch(con, csp)
            await con.goto("/console/")
            await con.fill("#username", INVIGILATOR[0])
            await con.fill("#password", INVIGILATOR[1])
            await con.click("#login-submit")
            await con.wait_for_url("**/console/room.html")
            tile = con.locator(f'.tile[data-candidate-id="{cand.id}"]')
            await expect(tile).to_have_attribute("data-connected", "true", timeout=20_000)
            for view in ("first", "second"):
                await expect(tile.locator(f'.view[data-view="{view}"]')).to_have_attribute(
                    "data-connected", "true"
                )
            alert = con.locator(
                f'#alert-feed li.alert[data-type="absent"][data-candidate-id="{cand.id}"]'
            )
            await expect(alert.first).to_be_visible(timeout=60_000)
            await con.screenshot(path=str(tmp_path / "console.png"))
            # still through the relay
            pairs = await page.evaluate(SELECTED_PAIRS)
            assert pairs and all(p["local"] == "relay" for p in pairs), pairs

            # the device check's network check, from home: the relay only over TLS, the
            # round trip and a sustained upload over the exam's path, advice about UDP
            net = await page.evaluate("import('/exam/network.js').then((m) => m.networkCheck())")
            assert net["turn"] == {**net["turn"], "tested": True, "udp": False, "tcp": False}, net
            assert net["turn"]["tls"] is True, net
            assert net["probe"]["ok"] and net["probe"]["path"] == "relay/tls", net
            assert 0 < net["probe"]["rtt_ms"] < 1000, net
            assert net["probe"]["upload_bytes_per_s"] > 20_000, net
            assert "udp_blocked" in net["advice"], net
        finally:
            await home.close()
            await mobile.close()
    assert csp == [], csp  # the pages pass their Content-Security-Policy


def _rows(out: str) -> dict[str, str]:
    rows = {}
    for line in out.splitlines():
        for word in (" OK ", " FAIL "):
            if word in line:
                rows[line.split(word)[0].strip()] = word.strip()
    return rows


def test_doctor_all_green(deployment):
    r = deployment.doctor()
    print(r.stdout, r.stderr)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = _rows(r.stdout)
    for part in (
        "TLS certificate",
        "/health",
        "database",
        "Redis",
        "models",
        "security headers",
        "server clock",
        "WebSocket upgrade",
        "TURN credentials",
        "TURN UDP",
        "TURN TCP",
        "TURN TLS",
    ):
        assert rows.get(part) == "OK", (part, r.stdout)


async def test_without_turn_home_cannot_stream_and_doctor_says_so(
    deployment, cameras, chromium_path
):
    dep = deployment
    dep.stop_part("coturn")
    r = dep.doctor()
    print(r.stdout)
    assert r.returncode == 1
    rows = _rows(r.stdout)
    assert rows["TURN UDP"] == rows["TURN TCP"] == rows["TURN TLS"] == "FAIL", r.stdout
    assert rows["database"] == rows["Redis"] == "OK"

    # a second candidate at home: no relay, no picture reaches the server
    cand = dep.sitting.candidates[1]
    async with async_playwright() as pw:
        home = await _browser(pw, netkit.HOME, chromium_path, cameras["home"], dep)
        try:
            page = await (await home.new_context(base_url=SITE)).new_page()
            await _walk_to_identity(page, dep.sitting.password, cand.id_number)
            status = page.locator("#stream-status")
            await expect(status).to_have_attribute("data-state", "reconnecting", timeout=90_000)
            assert await status.get_attribute("data-state") != "streaming"
        finally:
            await home.close()

    # Redis stopped: the doctor names it
    dep.start_coturn()
    dep.stop_part("redis")
    r = dep.doctor()
    print(r.stdout)
    assert r.returncode == 1
    rows = _rows(r.stdout)
    assert rows["Redis"] == "FAIL", r.stdout
    assert rows["TURN TLS"] == "OK", r.stdout
