"""The one settings object. Every setting has a default that works on one machine and an
environment variable ``PROCTOR_<NAME>``; the README's configuration table lists them."""

from __future__ import annotations

import os
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var)
    return Path(value) if value else Path.home() / fallback


def default_data_dir() -> Path:
    return _xdg("XDG_DATA_HOME", ".local/share") / "proctor"


def default_models_dir() -> Path:
    return _xdg("XDG_CACHE_HOME", ".cache") / "proctor" / "models"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PROCTOR_", extra="ignore")

    # where things live
    data_dir: Path = Field(default_factory=default_data_dir)
    models_dir: Path = Field(default_factory=default_models_dir)
    database_url: str = ""  # empty: SQLite file data_dir/proctor.db

    # HTTP server
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: str = ""  # empty: a random key is generated and kept in data_dir
    # HTTPS served by uvicorn itself (issue 20): PEM certificate (chain) and key; both or none
    tls_cert: str = ""
    tls_key: str = ""
    # the reverse proxy's addresses (comma separated; "*" = any): only from these are
    # X-Forwarded-For / X-Forwarded-Proto believed. Empty: no proxy, believe none.
    trusted_proxies: str = ""
    hsts_seconds: int = 31_536_000  # Strict-Transport-Security max-age on HTTPS; 0: none
    log_level: str = "info"
    # a response field its route's model does not declare fails the request (tests set it;
    # production sends it and logs a warning: proctor.api.wire)
    strict_wire: bool = False

    # several processes / machines (issue 7); empty = single process, in-process bus
    redis_url: str = ""
    redis_namespace: str = "proctor"  # key/channel prefix: several deployments, one Redis
    # server processes behind one address (`proctor serve --workers`); 0 = one per core when
    # redis_url is set, else a single process
    workers: int = 0
    migrate_on_start: bool = True  # workers started by `serve --workers` skip it

    # media: what the browser is asked to send, and how often analysis looks
    capture_width: int = 640
    capture_height: int = 480
    capture_fps: int = 10
    # the phone's side view: desk, hands and screen change slowly; each received frame
    # costs the server about 2 ms of CPU (issue 7)
    phone_capture_fps: int = 5
    analysis_fps: float = 2.0  # default per sitting
    analysis_enabled: bool = True  # false: receive and decode only (capacity baseline)
    # worker processes running the detectors (proctor.vision.pool); 0: in this process's
    # analysis thread; -1 (default): two when the server is a single process on a machine
    # of two cores or more (analysis takes whatever the server's own process leaves of the
    # cores: at 30 candidates on 2 cores one worker analysed 1.27 / 0.96 frames/s per view
    # with p95 alert latency 2.4 s, two 2.0 / 1.0 at 0.86 s), else 0 (several server
    # workers already use the cores). A second worker starts only when frames queue.
    analysis_processes: int = -1
    thumbnail_fps: float = 1.0
    thumbnail_width: int = 320
    # issue 22: while no invigilator watches a candidate live, their pages send video at
    # the analysis rate (the sitting's, per view) times send_rate_headroom, and at the full
    # capture rate only while a live view is open; false: always the full rate. The
    # headroom keeps a fresh frame at every analysis tick (sender and sampler clocks are
    # not in phase: at exactly the analysis rate some ticks find no new frame)
    send_analysis_rate: bool = True
    send_rate_headroom: float = 1.5
    # received video held back behind lost packets (a network drop) resumes at a keyframe
    # asked for at once: at once when they span more than this (media time), else once
    # they have held it back this long (retransmissions may come meanwhile).
    # 0: aiortc's own behaviour (held until 512 newer packets came: tens of seconds)
    video_resync_seconds: float = 1.0
    # Opus DTX (issue 22): silence is sent as a few packets a second, speech as usual
    audio_dtx: bool = True
    # whole-session recording (issue 22): both views' received VP8 and Opus, remuxed (not
    # decoded, not re-encoded) into WebM segments of about recording_segment_seconds, each
    # a hash-chained evidence file under the sitting's retention; false: nothing recorded
    recording_enabled: bool = True
    recording_segment_seconds: float = 60.0

    # rules defaults (per sitting, copied when a sitting is created)
    absent_seconds: float = 5.0
    multiple_persons_m: int = 3
    multiple_persons_k: int = 5
    alert_cooldown_seconds: float = 30.0
    # episodes (issue 18): an ongoing alert's "last seen" is written and sent to consoles
    # at most this often; a worse moment's screenshot at most every alert_peak_seconds
    alert_update_seconds: float = 5.0
    alert_peak_seconds: float = 30.0
    # evidence captions (issue 18): the font (a .ttc/.otf/.ttf with CJK glyphs; empty: the
    # first Noto CJK font installed) and the time zone of their times, unless the sitting
    # names its own (RuleSettings.time_zone)
    caption_font: str = ""
    time_zone: str = "Asia/Shanghai"

    # WebRTC: STUN/TURN servers handed to browsers (comma separated); empty = host only
    ice_servers: str = ""
    # TURN (coturn, issue 20): the relay's URLs (comma separated, e.g.
    # "turn:turn.example.org:3478?transport=udp,turn:turn.example.org:3478?transport=tcp,
    # turns:turn.example.org:443?transport=tcp") and coturn's static-auth-secret. Each
    # candidate, phone and console session gets its own credentials (coturn's REST scheme),
    # valid for turn_credential_seconds at most and never past the session's end.
    turn_urls: str = ""
    turn_secret: str = ""
    turn_credential_seconds: int = 4 * 3600
    # the URL the server's own peers allocate relays at (empty: the first turn: URL above)
    turn_server_url: str = ""

    # the audit chain's key (issue 21): HMAC-SHA256 of every link, kept outside the
    # database. audit_key: 64 hex digits given in the environment; else the file
    # audit_key_file (empty: data_dir/audit.key; put it elsewhere than the database in
    # production), made with mode 0600 by 'proctor audit init-key' or 'proctor demo'.
    # Without a key the server refuses to start.
    audit_key: str = ""
    audit_key_file: str = ""

    # a staff session that made no request this long has ended (0: never)
    staff_idle_minutes: float = 30.0

    # request bounds (issue 21): a JSON body is read at most this far (413 beyond)
    max_json_body_bytes: int = 1 << 20

    # exam flow (issue 3): login rate limit, phone pairing address, identity workers
    login_max_failures_per_id: int = 5  # refused logins per ID number within the window
    login_max_failures_per_address: int = 30  # ... per client address (NAT shares one)
    login_failure_window_seconds: float = 300.0
    # past a limit, the n-th further failure closes the key for base * 2**n s (at most the
    # window); a solved challenge gets the login checked anyway
    login_backoff_base_seconds: float = 10.0
    public_url: str = ""  # base URL phones reach (QR code); empty: the URL the page used
    identity_workers: int = 1  # processes running the face-identity model
    # the face embedder of the identity check (issue 24): "arcface_mbf" (InsightFace
    # weights, non-commercial research licence) or "dlib" (CC0, weaker on East Asian faces)
    identity_model: Literal["arcface_mbf", "dlib"] = "arcface_mbf"
    auto_submit_sweep_seconds: float = 2.0  # how often ended papers are handed in; 0: never

    @property
    def effective_analysis_processes(self) -> int:
        if self.analysis_processes >= 0:
            return self.analysis_processes
        single = not self.redis_url
        return 2 if single and (os.cpu_count() or 1) >= 2 else 0

    @cached_property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'proctor.db'}"

    @property
    def evidence_dir(self) -> Path:
        return self.data_dir / "evidence"

    def ensure_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.evidence_dir.mkdir(parents=True, exist_ok=True)

    def resolved_secret_key(self) -> str:
        """The signing key: from the environment, or generated once and kept in data_dir."""
        if self.secret_key:
            return self.secret_key
        self.ensure_dirs()
        path = self.data_dir / "secret.key"
        if not path.exists():
            import secrets

            path.write_text(secrets.token_hex(32))
            path.chmod(0o600)
        return path.read_text().strip()

    @property
    def audit_key_path(self) -> Path:
        return Path(self.audit_key_file) if self.audit_key_file else self.data_dir / "audit.key"

    def load_audit_key(self) -> bytes | None:
        """The audit chain's key: PROCTOR_AUDIT_KEY, else the key file; None when neither
        exists. ValueError when the one given is not a key (at least 32 hex digits)."""
        if self.audit_key:
            return parse_audit_key(self.audit_key, "PROCTOR_AUDIT_KEY")
        path = self.audit_key_path
        if not path.exists():
            return None
        return parse_audit_key(path.read_text(), str(path))

    def init_audit_key(self) -> tuple[Path, bool]:
        """Make the key file (32 random bytes as hex, mode 0600) unless it exists; returns
        (path, made). The file is created with its mode, never readable by others."""
        path = self.audit_key_path
        if path.exists():
            parse_audit_key(path.read_text(), str(path))
            return path, False
        import secrets

        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        return path, True


def parse_audit_key(text: str, where: str) -> bytes:
    value = text.strip()
    try:
        key = bytes.fromhex(value)
    except ValueError:
        key = b""
    if len(key) < 16:
        raise ValueError(
            f"the audit key in {where} is not a key: it must be at least 32 hex digits "
            "('proctor audit init-key' makes one)"
        )
    return key


def default_time_zone() -> str:
    """The server's default time zone for sittings that name none (PROCTOR_TIME_ZONE)."""
    return _default_time_zone()


@lru_cache(maxsize=1)
def _default_time_zone() -> str:
    return Settings().time_zone
