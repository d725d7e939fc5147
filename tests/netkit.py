"""Network namespaces for the NAT/TURN test (issue 20): a small internet of the test's own,
made with `ip netns`, veth pairs and nftables, every address inside it; removed at the end
even on failure (and any leftover of an earlier run at the start).

    root ns ── 10.77.9.1/30 ─ veth ─ 10.77.9.2/30 ─┐
                                                    srv: proctor, Caddy (10.77.0.1:443),
                                                    coturn (10.77.0.2:3478 UDP+TCP, :443 TLS),
                                                    Redis (127.0.0.1)
                                                    10.77.0.0/24 ─ veth ─ gw (10.77.0.254)
    home: 192.168.77.2 ─ veth ─ gw 192.168.77.1 ─ NAT; only TCP 443 passes (no UDP at all)
    mob:  10.78.0.2    ─ veth ─ gw 10.78.0.1    ─ NAT (a phone on mobile data)

Only the srv namespace has a link to the root namespace (a /30 of its own, for the test's
HTTP calls and health polling); no namespace has a route anywhere else, and each has its
own /etc/netns/NAME/hosts and resolv.conf (names resolve to these addresses, DNS asks
127.0.0.1 of that namespace), so nothing leaves this machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

PREFIX = "pxt"
SRV, GW, HOME, MOB = (f"{PREFIX}-srv", f"{PREFIX}-gw", f"{PREFIX}-home", f"{PREFIX}-mob")
NAMESPACES = (SRV, GW, HOME, MOB)
WEB_IP, TURN_IP, GW_SRV_IP = "10.77.0.1", "10.77.0.2", "10.77.0.254"
ROOT_IP, SRV_LINK_IP = "10.77.9.1", "10.77.9.2"
HOME_IP, HOME_GW = "192.168.77.2", "192.168.77.1"
MOB_IP, MOB_GW = "10.78.0.2", "10.78.0.1"
WEB_NAME, TURN_NAME = "exam.test", "turn.exam.test"
ROOT_VETH = f"{PREFIX}-root"

NFT_GW = """
table inet pxt_nat {
  chain forward {
    type filter hook forward priority 0; policy accept;
    # the home network lets only HTTPS out: no UDP at all, no TCP but to port 443
    iifname "gw-home" meta l4proto udp drop
    iifname "gw-home" tcp dport != 443 drop
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "gw-srv" masquerade
  }
}
"""


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def in_ns(ns: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return run("ip", "netns", "exec", ns, *cmd, check=check)


def missing_tools() -> list[str]:
    need = ["ip", "nft", "caddy", "turnserver", "certutil", "redis-server"]
    out = [t for t in need if shutil.which(t) is None]
    if os.geteuid() != 0:
        out.append("root")
    return out


def teardown() -> None:
    """Remove every namespace, veth and /etc/netns file of this kit (idempotent)."""
    for ns in NAMESPACES:
        pids = run("ip", "netns", "pids", ns, check=False).stdout.split()
        for pid in pids:  # processes the test started inside; its own, by id
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), 9)
        run("ip", "netns", "del", ns, check=False)
        shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)
    run("ip", "link", "del", ROOT_VETH, check=False)


def _veth(a_ns: str | None, a: str, b_ns: str, b: str) -> None:
    run("ip", "link", "add", a, "type", "veth", "peer", "name", b)
    if a_ns:
        run("ip", "link", "set", a, "netns", a_ns)
    run("ip", "link", "set", b, "netns", b_ns)


def _addr(ns: str | None, dev: str, *cidrs: str) -> None:
    prefix = ("ip", "netns", "exec", ns) if ns else ()
    for cidr in cidrs:
        run(*prefix, "ip", "addr", "add", cidr, "dev", dev)
    run(*prefix, "ip", "link", "set", dev, "up")


@dataclass
class Topology:
    hosts: str = f"127.0.0.1 localhost\n{WEB_IP} {WEB_NAME}\n{TURN_IP} {TURN_NAME}\n"

    def build(self) -> Topology:
        teardown()
        for ns in NAMESPACES:
            run("ip", "netns", "add", ns)
            in_ns(ns, "ip", "link", "set", "lo", "up")
            etc = Path("/etc/netns") / ns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text(self.hosts)
            (etc / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        # root <-> srv: the test's own link to the server (health, admin calls)
        _veth(None, ROOT_VETH, SRV, "srv-root")
        _addr(None, ROOT_VETH, f"{ROOT_IP}/30")
        _addr(SRV, "srv-root", f"{SRV_LINK_IP}/30")
        # srv <-> gw
        _veth(SRV, "srv-gw", GW, "gw-srv")
        _addr(SRV, "srv-gw", f"{WEB_IP}/24", f"{TURN_IP}/24")
        _addr(GW, "gw-srv", f"{GW_SRV_IP}/24")
        # home <-> gw, mob <-> gw
        _veth(HOME, "home-gw", GW, "gw-home")
        _addr(HOME, "home-gw", f"{HOME_IP}/24")
        _addr(GW, "gw-home", f"{HOME_GW}/24")
        in_ns(HOME, "ip", "route", "add", "default", "via", HOME_GW)
        _veth(MOB, "mob-gw", GW, "gw-mob")
        _addr(MOB, "mob-gw", f"{MOB_IP}/24")
        _addr(GW, "gw-mob", f"{MOB_GW}/24")
        in_ns(MOB, "ip", "route", "add", "default", "via", MOB_GW)
        # the gateway: forwards and masquerades; it has no default route
        in_ns(GW, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        _nft(GW, NFT_GW)
        return self


def _nft(ns: str, ruleset: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "-f", "-"],
        input=ruleset,
        text=True,
        check=True,
        capture_output=True,
    )


def popen_in(ns: str, cmd: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    out = open(log, "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, *cmd],
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )


def stop(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def chromium_in(ns: str, chromium: str, out_dir: Path) -> Path:
    """A wrapper that starts Chromium inside ``ns`` (Playwright talks to it over a pipe,
    which `ip netns exec` passes on)."""
    path = out_dir / f"chromium-{ns}.sh"
    path.write_text(f'#!/bin/sh\nexec ip netns exec {ns} {chromium} "$@"\n')
    path.chmod(0o755)
    return path


def trust_ca(home: Path, ca: Path) -> None:
    """An NSS database in ``home`` (Chromium's profile trust store on Linux) that trusts
    ``ca`` for web sites."""
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True, exist_ok=True)
    run("certutil", "-d", f"sql:{db}", "-N", "--empty-password")
    run("certutil", "-d", f"sql:{db}", "-A", "-t", "C,,", "-n", "proctor-test-ca", "-i", str(ca))
