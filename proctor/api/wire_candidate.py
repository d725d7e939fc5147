"""What the candidate's routes (proctor.api.candidate) and the network routes
(proctor.api.network) answer (issue 19; see proctor.api.wire).

Times are the strings the routes write (``datetime.isoformat()``, proctor.times.iso), so
they are declared ``str``. A field the route leaves out on some answers has a default here
and the route is declared with ``response_model_exclude_unset=True``: it stays out."""

from __future__ import annotations

from proctor.api.wire import Wire


class IceServer(Wire):
    """An RTCIceServer: a STUN URL, or the TURN URLs with credentials made for this session
    (``username``/``credential`` absent when the TURN server has no shared secret)."""

    urls: str | list[str]
    username: str | None = None
    credential: str | None = None


class CaptureMedia(Wire):
    """How the page captures its camera, and the ICE servers of its peer connection."""

    width: int
    height: int
    fps: int
    ice_servers: list[IceServer]


class MeCandidate(Wire):
    id: int
    name: str
    id_number: str


class MeSitting(Wire):
    id: int
    name: str
    kind: str
    analysis_fps: float
    starts_at: str
    ends_at: str


class Me(Wire):
    """The signed-in candidate, their sitting and how to capture."""

    candidate: MeCandidate
    sitting: MeSitting
    media: CaptureMedia


class LoginOut(Me):
    """A session was opened (the token is also set as the session cookie)."""

    token: str
    step: str
    #: the candidate had logged in before (the attempt goes on where it was)
    resumed: bool


class LoggedOut(Wire):
    ok: bool


class RtcAnswer(Wire):
    """The server's SDP answer to the page's offer, and the frame rate to send the view at
    (issue 22)."""

    sdp: str
    type: str
    send_fps: float


class IceServersOut(Wire):
    ice_servers: list[IceServer]


class ProbeAnswer(Wire):
    """The SDP answer of the network probe's peer (proctor.media.probe)."""

    sdp: str
    type: str
