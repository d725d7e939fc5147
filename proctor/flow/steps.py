"""The candidate's way through a sitting: logging in, confirming, the pledge, the phone
step, the state the candidate's page shows, the page's own events.

Which action may happen in which step, and which step follows, is the state machine's
table (proctor.flow.machine); every action here checks and changes the step through it
(``wrong_step`` otherwise), so no step can be skipped; each transition records when it
happened (and who acted, for the invigilator's). Refusing the pledge ends the attempt in
``refused``. An invigilator may pause a candidate who is answering (the
clock stops, answers are refused) and resume them, or end the exam with a category of the
documents (``terminated``; proctor.invigilation.control). Every function takes ``now`` from the
app's clock.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.auth import ratelimit
from proctor.auth import sessions as auth
from proctor.errors import Conflict, Forbidden, Invalid, NotAuthenticated, NotFound, TooMany
from proctor.events.bus import Bus, sitting_channel
from proctor.evidence.zones import zone_body
from proctor.flow import screen, timing
from proctor.flow.machine import (
    ENDED,
    STEP_TITLES,
    Ctx,
    check,
    move,
    move_attempt,
    steps_of,
    terminated_error,
)
from proctor.rules import RuleSettings
from proctor.sitting import violations
from proctor.sitting.policy import rules_of
from proctor.sitting.sittings import candidate_facts
from proctor.store.db import Database
from proctor.store.tables import (
    Answer,
    Attempt,
    Candidate,
    CandidateEvent,
    DeviceReport,
    Paper,
    Sitting,
    TimeExtension,
)

log = logging.getLogger(__name__)

PLEDGE_TEXT = """考生诚信考试承诺书 · Candidate's pledge

本人自愿参加本次职业技能等级认定考试，承诺：
1. 本人就是报名考生本人，不请他人代考，不替他人考试；
2. 在安静、明亮、独立的房间内独自参加考试，考试期间无他人进入；
3. 考试全程开启摄像头和麦克风，第二视角手机摆放到位，不遮挡、不关闭；
4. 不携带、不使用与考试无关的资料和电子设备，不录屏、不拍照、不传播试题；
5. 服从监考老师的指挥，违反考试纪律的，自愿接受相应处理。

I take this skill-certification exam myself and promise:
1. I am the registered candidate; nobody takes the exam for me and I take it for nobody;
2. I sit alone in a quiet, bright, private room, and nobody comes in during the exam;
3. the camera and microphone stay on, and the phone (second view) stays in place,
   uncovered, for the whole exam;
4. I neither carry nor use any material or electronic device unrelated to the exam, and I
   do not record, photograph or pass on the questions;
5. I follow the invigilator's instructions and accept the consequences of any breach of
   the exam rules."""


# ------------------------------------------------------------------------- loading


async def extension_seconds(db: AsyncSession, sitting_id: int, candidate_id: int) -> int:
    total = await db.scalar(
        select(func.coalesce(func.sum(TimeExtension.seconds), 0)).where(
            TimeExtension.sitting_id == sitting_id,
            (TimeExtension.candidate_id.is_(None)) | (TimeExtension.candidate_id == candidate_id),
        )
    )
    return int(total or 0)


def paused_seconds(attempt: Attempt | None, now: datetime | None) -> float:
    """How long the attempt's clock stood still (up to ``now`` for a pause still on)."""
    if attempt is None:
        return 0.0
    return timing.paused_total(attempt.paused_seconds, attempt.paused_at, now)


async def end_of(
    db: AsyncSession,
    sitting: Sitting,
    candidate_id: int,
    attempt: Attempt | None = None,
    now: datetime | None = None,
) -> datetime:
    """The candidate's end: the sitting's end plus every extension for them, plus the time
    their ``attempt`` was paused (up to ``now`` for a pause still on)."""
    return timing.candidate_end(
        sitting.ends_at,
        await extension_seconds(db, sitting.id, candidate_id),
        paused_seconds(attempt, now),
    )


async def record_event(
    db: AsyncSession, candidate_id: int, kind: str, now: datetime, **data: Any
) -> None:
    db.add(CandidateEvent(candidate_id=candidate_id, kind=kind, data=data, at=now))


EXAM_OVER_MESSAGE = (
    "本场考试已结束，摄像头已关闭，可以关闭本页面。 Your exam is over: the camera is off and "
    "you may close this page."
)


async def require_streaming(db: AsyncSession, candidate_id: int) -> None:
    """A view may stream only until the candidate's exam ends (a phone page left open
    would otherwise reconnect after the hand-in)."""
    if await attempt_ended(db, candidate_id):
        raise Conflict("exam_over", EXAM_OVER_MESSAGE)


async def current_step(db: AsyncSession, candidate_id: int) -> str | None:
    return await db.scalar(select(Attempt.step).where(Attempt.candidate_id == candidate_id))


async def attempt_ended(db: AsyncSession, candidate_id: int) -> bool:
    return await current_step(db, candidate_id) in ENDED


# ------------------------------------------------------------------------- step 1: login


LoginLimits = ratelimit.LoginLimits


INVALID_CREDENTIALS = NotAuthenticated(
    "invalid_credentials",
    "考试口令或身份证号不正确，请核对后重试。 The exam password or ID number is not right. "
    "Check both and try again.",
)


@dataclass
class LoginResult:
    token: str
    ctx: Ctx
    resumed: bool


def _clean_id(id_number: str) -> str:
    return "".join(id_number.split()).upper()


class _Refused(Exception):
    """A refused login whose failure is counted: the count is committed, then ``error`` is
    raised to the client."""

    def __init__(self, error: Exception) -> None:
        self.error = error


async def login(database: Database, **kwargs: Any) -> LoginResult:
    """Step 1 (``_login``), as one transaction on the database writer thread (issue 22: at
    the start of a sitting 30 candidates log in within a minute while the server is busy
    with their media). Two logins of one candidate at once (a client trying again while
    its first request, slow on a busy server, still runs) both find no attempt and both
    create one; the second one's insert fails on the unique candidate: it then logs in
    again and resumes the attempt the first one made, instead of failing with a 500. The
    returned ``Ctx`` is detached (its loaded attributes readable)."""

    async def transaction(session: AsyncSession) -> LoginResult | _Refused:
        try:
            return await _login(session, **kwargs)
        except _Refused as refused:  # the counted failure commits with the transaction
            return refused

    try:
        out = await database.write(transaction)
    except IntegrityError:
        log.info("two logins at once for one candidate: the later one resumes")
        out = await database.write(transaction)
    if isinstance(out, _Refused):
        log.info("candidate login refused: %s", getattr(out.error, "code", out.error))
        raise out.error
    return out


async def _login(
    db: AsyncSession,
    *,
    password: str,
    id_number: str,
    now: datetime,
    client: str,
    current_token: str | None,
    limits: LoginLimits,
    challenge: str | None = None,
    solution: str | None = None,
) -> LoginResult:
    """Step 1. Refusals, each with its own code: ``too_many_attempts`` (429),
    ``invalid_credentials`` (401), ``wrong_sitting``, ``not_open_yet``, ``late``,
    ``sitting_over``, ``pledge_refused`` (403), ``already_logged_in``,
    ``already_submitted`` (409). Refused credentials count towards the rate limit and are
    committed before the refusal is raised. A candidate who entered in time comes back
    where they left off (``resumed``), even after the entry cut-off."""
    idn = _clean_id(id_number)
    keys = [
        ratelimit.candidate_key(idn, client, limits.max_failures_per_id),
        ratelimit.address_key(client, limits.max_failures_per_address),
    ]
    await ratelimit.check(
        db, keys, now, limits.backoff, limits.secret, challenge=challenge, solution=solution
    )

    async def refuse(error: Exception) -> _Refused:
        await ratelimit.record(db, keys, now, limits.window_seconds)
        return _Refused(error)

    sitting = await db.scalar(select(Sitting).where(Sitting.password == password.strip()))
    if sitting is None:
        raise await refuse(INVALID_CREDENTIALS)
    candidate = await db.scalar(
        select(Candidate).where(Candidate.sitting_id == sitting.id, Candidate.id_number == idn)
    )
    if candidate is None:
        elsewhere = list(
            await db.scalars(
                select(Sitting)
                .join(Candidate, Candidate.sitting_id == Sitting.id)
                .where(Candidate.id_number == idn, Sitting.ends_at > now)
                .order_by(Sitting.starts_at)
            )
        )
        if not elsewhere:
            raise await refuse(INVALID_CREDENTIALS)
        names = "、".join(f"「{s.name}」" for s in elsewhere[:3])
        raise await refuse(
            Forbidden(
                "wrong_sitting",
                f"你没有报名「{sitting.name}」这一场；你的场次是{names}，请使用该场次的口令。 "
                f"You are not registered for the sitting '{sitting.name}'. Your sitting is "
                f"{', '.join(repr(s.name) for s in elsewhere[:3])}: use its password.",
            )
        )

    rules = rules_of(sitting.kind, sitting.flow)
    attempt = await db.scalar(
        select(Attempt).where(Attempt.candidate_id == candidate.id).with_for_update()
    )
    resumed = attempt is not None
    if attempt is None:
        timing.check_first_login(now, rules, sitting.starts_at, sitting.ends_at)
    else:
        if attempt.step == "refused" and not identity_settled(attempt):
            # refused before anyone proved to be the candidate: maybe an impostor with the
            # shared password and the ID number; nothing irreversible happened, the
            # candidate may sign now (recorded)
            move_attempt(attempt, sitting.kind, "reopen_pledge_at_login", now)
            await record_event(db, candidate.id, "pledge_reopened", now, by="login")
        elif attempt.step == "refused":
            raise Forbidden(
                "pledge_refused",
                "你已拒绝签署承诺书，本场考试已结束；如有疑问请联系监考老师。 You refused the "
                "pledge, so this sitting has ended for you; contact the invigilator.",
            )
        if attempt.step == "submitted":
            raise Conflict(
                "already_submitted",
                "你已交卷，本场考试已结束。 You have already handed in this exam.",
            )
        if attempt.step == "terminated":
            raise terminated_error(attempt)
        if attempt.step != "finished":  # a finished device check may be run again
            end = await end_of(db, sitting, candidate.id, attempt, now)
            timing.check_relogin(now, end, rules)
    # a second login is refused only while the first session belongs to someone whose
    # identity was checked: before that, the newest login wins (an impostor polling with
    # the victim's ID number cannot keep the victim out; they cannot pass the photo check)
    token = await auth.open_candidate_session(
        db,
        candidate.id,
        now,
        rules.session_takeover_seconds if identity_settled(attempt) else 0.0,
        current_token,
    )
    if attempt is None:
        attempt = Attempt(
            candidate_id=candidate.id,
            sitting_id=sitting.id,
            step="confirm",
            logged_in_at=now,
            identity_failures=0,
            grading_pending=False,
            updated_at=now,
        )
        db.add(attempt)
    elif attempt.step == "finished":
        move_attempt(attempt, sitting.kind, "run_device_check_again", now)
    await record_event(
        db, candidate.id, "login", now, client=client[:64], resumed=resumed, step=attempt.step
    )
    await db.flush()
    return LoginResult(token, Ctx(candidate, sitting, attempt, rules), resumed)


def identity_settled(attempt: Attempt | None) -> bool:
    """Whether someone proved to be the candidate: the photo check passed, or an
    invigilator admitted them. Until then nothing done in the candidate's name is final."""
    return attempt is not None and attempt.identity_passed_at is not None


async def undo_pledge_refusal(
    db: AsyncSession, ctx: Ctx, now: datetime, by: int, reason: str
) -> None:
    """The invigilator undoes a refused pledge: the candidate signs it on their next login."""
    reason = " ".join(reason.split())
    if not reason:
        raise Invalid("reason_required", "请填写原因。 Give a reason.")
    if ctx.attempt.step != "refused":
        raise Conflict(
            "pledge_not_refused",
            "该考生没有拒绝承诺书。 This candidate has not refused the pledge.",
        )
    move(ctx, "reopen_pledge", now)
    await record_event(db, ctx.candidate.id, "pledge_reopened", now, by=by, reason=reason[:2000])


async def clear_login_limit(db: AsyncSession, candidate_id: int, now: datetime, by: int) -> int:
    """The invigilator clears the rate limit of a candidate's ID number (recorded,
    committed)."""
    candidate = await db.get(Candidate, candidate_id)
    if candidate is None:
        raise NotFound("unknown_candidate", "No such candidate.")
    n = await ratelimit.clear_candidate(db, candidate.id_number)
    await record_event(db, candidate_id, "login_limit_cleared", now, by=by, failures=n)
    await db.commit()
    return n


async def release_sessions(db: AsyncSession, candidate_id: int, now: datetime, by: int) -> int:
    """The invigilator ends the candidate's sessions so they can log in again on another
    device now (recorded, committed)."""
    n = await auth.release_candidate(db, candidate_id, now)
    await record_event(db, candidate_id, "session_released", now, by=by)
    await db.commit()
    return n


# ------------------------------------------------------------------------- step 2: confirm


async def confirm_info(db: AsyncSession, ctx: Ctx, now: datetime) -> None:
    move(ctx, "confirm", now)
    ctx.attempt.info_confirmed_at = now
    await record_event(db, ctx.candidate.id, "info_confirmed", now)


async def report_info_problem(
    db: AsyncSession, bus: Bus, ctx: Ctx, text: str, now: datetime
) -> dict[str, Any]:
    """The candidate says their details are wrong: recorded and shown to the invigilator;
    the candidate may still confirm and go on (a typo must not keep anyone out)."""
    check(ctx, "report_info_problem")
    text = " ".join(text.split())
    if not 1 <= len(text) <= 500:
        raise Invalid("bad_report", "请用1到500个字描述问题。 Describe the problem in 1-500 chars.")
    event = CandidateEvent(
        candidate_id=ctx.candidate.id, kind="info_problem", data={"text": text}, at=now
    )
    db.add(event)
    await db.flush()
    await db.commit()
    body = {
        "type": "info_problem",
        "id": event.id,  # resolved by the invigilator: POST /api/invigilate/info-problems/{id}
        "sitting_id": ctx.sitting.id,
        "candidate_id": ctx.candidate.id,
        "candidate_name": ctx.candidate.name,
        "text": text,
        "at": now.isoformat(),
    }
    await bus.publish(sitting_channel(ctx.sitting.id), body)
    return body


# ------------------------------------------------------------------------- step 3: pledge


async def answer_pledge(db: AsyncSession, ctx: Ctx, accept: bool, now: datetime) -> None:
    """Signing goes on to the identity check; refusing ends the attempt (recorded) and the
    candidate's sessions."""
    if accept:
        move(ctx, "sign_pledge", now)
        ctx.attempt.pledge_signed_at = now
        await record_event(db, ctx.candidate.id, "pledge_signed", now)
        return
    move(ctx, "refuse_pledge", now)
    ctx.attempt.pledge_refused_at = now
    await record_event(db, ctx.candidate.id, "pledge_refused", now)
    await auth.release_candidate(db, ctx.candidate.id, now)


# ------------------------------------------------------------------------- step 5: phone


async def view_connected(db: AsyncSession, candidate_id: int, view: str) -> bool:
    """Whether the newest connection event of ``view`` (first: the camera, second: the
    phone) says connected (the media layer records them, whichever server process holds
    the connection)."""
    rows = await db.scalars(
        select(CandidateEvent)
        .where(
            CandidateEvent.candidate_id == candidate_id,
            CandidateEvent.kind.in_(("media_connected", "media_lost", "media_ended")),
        )
        .order_by(CandidateEvent.at.desc(), CandidateEvent.id.desc())
        .limit(50)
    )
    for row in rows:
        if (row.data or {}).get("view") == view:
            return row.kind == "media_connected"
    return False


async def second_view_connected(db: AsyncSession, candidate_id: int) -> bool:
    return await view_connected(db, candidate_id, "second")


async def phone_done(db: AsyncSession, ctx: Ctx, now: datetime) -> None:
    """Step 5 is done once a phone paired with this candidate streams the second view
    (or at once when the sitting does not require the phone)."""
    check(ctx, "phone_done")
    if ctx.rules.require_phone:
        if ctx.attempt.phone_paired_at is None:
            raise Conflict(
                "phone_not_paired",
                "请先用手机扫描二维码。 Scan the QR code with your phone first.",
            )
        if not await second_view_connected(db, ctx.candidate.id):
            raise Conflict(
                "phone_not_streaming",
                "还没有收到手机的画面：请在手机上允许使用摄像头，并保持页面打开。 No picture from "
                "the phone yet: allow the camera on the phone and keep its page open.",
            )
    ctx.attempt.phone_done_at = now
    move(ctx, "phone_done", now)
    await record_event(db, ctx.candidate.id, "phone_done", now)


# ------------------------------------------------------------------------- the state


async def has_paper(db: AsyncSession, sitting_id: int) -> bool:
    return bool(await db.scalar(select(Paper.id).where(Paper.sitting_id == sitting_id)))


def result_body(ctx: Ctx) -> dict[str, Any] | None:
    a = ctx.attempt
    if a.step != "submitted" or not ctx.rules.show_score_to_candidate:
        return None
    return {
        "objective_score": a.objective_score,
        "total_score": None if a.grading_pending else a.total_score,
        "grading_pending": a.grading_pending,
        "passed": None if a.grading_pending else a.passed,
        "pass_score": ctx.rules.pass_score,
    }


async def state_body(db: AsyncSession, ctx: Ctx, now: datetime) -> dict[str, Any]:
    """Everything the candidate's page needs to show the current step, including the
    server's time for a synced countdown."""
    a, s, c, rules = ctx.attempt, ctx.sitting, ctx.candidate, ctx.rules
    watch = RuleSettings.from_dict(s.rules)
    ext = await extension_seconds(db, s.id, c.id)
    paused = paused_seconds(a, now)
    end = timing.candidate_end(s.ends_at, ext, paused)
    window = timing.entry_window(rules, s.starts_at, s.ends_at)
    steps = steps_of(s.kind)
    answered = total = 0
    if a.question_order:
        total = len(a.question_order)
        values = await db.scalars(select(Answer.value).where(Answer.attempt_id == a.id))
        answered = sum(1 for v in values if v not in (None, "", []))
    earliest = (
        timing.earliest_submit_at(a.answering_started_at, rules, paused).isoformat()
        if a.answering_started_at
        else None
    )
    return {
        "step": a.step,
        "steps": list(steps),
        "step_index": steps.index(a.step) if a.step in steps else None,
        "step_title": STEP_TITLES.get(a.step, a.step),
        "server_now": now.isoformat(),
        "candidate": candidate_facts(c),
        "sitting": {
            "id": s.id,
            "name": s.name,
            "kind": s.kind,
            "subject": s.subject,
            "exam": s.exam,
            "starts_at": s.starts_at.isoformat(),
            "ends_at": s.ends_at.isoformat(),
            **zone_body(s, s.starts_at),  # the page's times in the sitting's zone
        },
        "timing": {
            "starts_at": s.starts_at.isoformat(),
            "ends_at": end.isoformat(),
            "extension_seconds": ext,
            "paused_seconds": round(paused, 3),
            "entry_closes_at": window.closes_at.isoformat() if window.closes_at else None,
            "answering_started_at": (
                a.answering_started_at.isoformat() if a.answering_started_at else None
            ),
            "earliest_submit_at": earliest,
            "seconds_to_start": max(0.0, (s.starts_at - now).total_seconds()),
            "seconds_left": max(0.0, (end - now).total_seconds()),
        },
        "pledge": {"text": rules.pledge_text or PLEDGE_TEXT},
        "identity": {
            "failures": a.identity_failures,
            "max_failures": rules.identity_max_failures,
            "needs_invigilator": a.identity_passed_at is None
            and a.identity_failures >= rules.identity_max_failures,
            "passed": a.identity_passed_at is not None,
            "method": a.identity_method,
        },
        "phone": {
            "required": rules.require_phone,
            "paired": a.phone_paired_at is not None,
            "connected": await second_view_connected(db, c.id),
        },
        "paper_ready": await has_paper(db, s.id) if s.kind != "device_check" else None,
        # the newest device check's verdict (the page says "check passed", issue 23)
        "device_check": await _device_verdict(db, c.id) if s.kind == "device_check" else None,
        "progress": {"answered": answered, "total": total},
        "submitted_at": a.submitted_at.isoformat() if a.submitted_at else None,
        "submit_kind": a.submit_kind,
        "paused": (
            {
                "since": a.paused_at.isoformat(),
                "seconds_left": max(0.0, (end - now).total_seconds()),
            }
            if a.paused_at is not None
            else None
        ),
        "termination": termination_body(a),
        "result": result_body(ctx),
        "rules": {k: v for k, v in rules.as_dict().items() if k != "pledge_text"},
        # what the page watches of itself (issue 18): leaving it is counted and reported
        "page_watch": {
            "fullscreen_required": watch.fullscreen_required,
            "screen_left_alert_count": watch.screen_left_alert_count,
        },
    }


async def _device_verdict(db: AsyncSession, candidate_id: int) -> dict[str, Any] | None:
    row = await db.scalar(
        select(DeviceReport)
        .where(DeviceReport.candidate_id == candidate_id)
        .order_by(DeviceReport.created_at.desc(), DeviceReport.id.desc())
        .limit(1)
    )
    if row is None:
        return None
    failed = [
        part
        for part, ok in (
            ("camera", row.camera_ok),
            ("microphone", row.microphone_ok),
            ("phone", row.phone_ok),
            ("upload", row.upload_ok),
        )
        if not ok
    ]
    return {"passed": bool(row.passed), "failed": failed, "at": row.created_at.isoformat()}


def termination_body(a: Attempt) -> dict[str, Any] | None:
    """What the candidate is told of an ended exam: the category (not the staff's reason)."""
    if a.step != "terminated" or a.termination_category is None:
        return None
    category = violations.CATEGORIES.get(a.termination_category)
    return {
        "category": a.termination_category,
        "zh": category.zh if category else a.termination_category,
        "en": category.en if category else a.termination_category,
        "at": a.terminated_at.isoformat() if a.terminated_at else None,
    }


async def overview(
    db: AsyncSession, sitting: Sitting, candidate_ids: set[int] | list[int], now: datetime
) -> list[dict[str, Any]]:
    """Every given candidate of the sitting with their step, identity state, phone,
    progress and time left (``absent``: not logged in yet)."""
    rows = await db.execute(
        select(Candidate, Attempt)
        .outerjoin(Attempt, Attempt.candidate_id == Candidate.id)
        .where(Candidate.sitting_id == sitting.id, Candidate.id.in_(candidate_ids))
        .order_by(Candidate.name)
    )
    out = []
    for cand, att in rows.all():
        if att is None:
            out.append(
                {
                    "candidate_id": cand.id,
                    "name": cand.name,
                    "id_number": cand.id_number,
                    "step": "absent",
                }
            )
            continue
        body = await state_body(
            db, Ctx(cand, sitting, att, rules_of(sitting.kind, sitting.flow)), now
        )
        out.append(
            {
                "candidate_id": cand.id,
                "name": cand.name,
                "id_number": cand.id_number,
                "step": att.step,
                "step_title": body["step_title"],
                "identity": body["identity"],
                "phone": body["phone"],
                "progress": body["progress"],
                "timing": body["timing"],
                "submitted_at": body["submitted_at"],
                "submit_kind": body["submit_kind"],
            }
        )
    return out


# ------------------------------------------------------------------------- page events

#: what the candidate's page reports about itself (leaving the exam is itself an event)
PAGE_EVENTS = frozenset(
    {
        "hidden",  # the page is no longer visible (another tab or app in front)
        "visible",
        "blur",  # the window lost the focus
        "focus",
        "fullscreen_exit",
        "fullscreen_enter",
        "copy",
        "cut",
        "paste",
        "contextmenu",
        "print",
    }
)
MAX_PAGE_EVENTS = 50
#: page events one candidate may record per minute (a page reports a few: focus lost,
#: full screen left, ...); more is refused, so a page cannot flood the record and consoles
MAX_PAGE_EVENTS_PER_MINUTE = 60


async def record_page_events(
    database: Database,
    bus: Bus,
    ctx: Ctx,
    events: list[dict[str, Any]],
    now: datetime,
    hint: Callable[[Candidate, str], Awaitable[Any]] | None = None,
) -> int:
    """Store the page's events (each as ``page_<kind>``) and what leaving the page makes
    of them (proctor.flow.screen) in one transaction on the database writer thread, then
    show them on the console. A leave to be warned about sends the candidate
    ``hint(candidate, "screen_left")`` (the invigilation's hints:
    proctor.invigilation.supervision.auto_hint)."""
    if len(events) > MAX_PAGE_EVENTS:
        raise Invalid("too_many_events", f"Send at most {MAX_PAGE_EVENTS} events at once.")
    clean = []
    for event in events:
        kind = event.get("kind")
        if kind not in PAGE_EVENTS:
            raise Invalid(
                "bad_event",
                f"Unknown page event {kind!r}: one of {', '.join(sorted(PAGE_EVENTS))}.",
            )
        clean.append(
            {
                "kind": kind,
                "client_at": str(event.get("at") or "")[:40] or None,
                "detail": str(event.get("detail") or "")[:200] or None,
            }
        )
    candidate_id, sitting_id, step = ctx.candidate.id, ctx.sitting.id, ctx.attempt.step
    rules = RuleSettings.from_dict(ctx.sitting.rules)

    async def store(db: AsyncSession) -> tuple[screen.Outcome, list[dict[str, Any]]]:
        recent = await db.scalar(
            select(func.count())
            .select_from(CandidateEvent)
            .where(
                CandidateEvent.candidate_id == candidate_id,
                CandidateEvent.kind.like("page\\_%", escape="\\"),
                CandidateEvent.at > now - timedelta(minutes=1),
            )
        )
        if (recent or 0) + len(clean) > MAX_PAGE_EVENTS_PER_MINUTE:
            raise TooMany(
                "too_many_events",
                f"页面事件过多（每分钟最多{MAX_PAGE_EVENTS_PER_MINUTE}条），请稍后再报告。 Too "
                f"many page events (at most {MAX_PAGE_EVENTS_PER_MINUTE} a minute): report "
                "later.",
            )
        for event in clean:
            await record_event(
                db,
                candidate_id,
                f"page_{event['kind']}",
                now,
                client_at=event["client_at"],
                detail=event["detail"],
                step=step,
            )
        # leaving the page (切屏): counted, warned, then reported (proctor.flow.screen)
        candidate = await db.get(Candidate, candidate_id)
        return await screen.after_page_events(db, candidate, rules, now)

    outcome, messages = await database.write(store)
    for message in messages:
        await bus.publish(sitting_channel(sitting_id), message)
    if outcome.warn is not None and hint is not None:
        await hint(ctx.candidate, "screen_left")
    for event in clean:
        await bus.publish(
            sitting_channel(sitting_id),
            {
                "type": "page_event",
                "candidate_id": candidate_id,
                "kind": event["kind"],
                "detail": event["detail"],
                "step": step,
                "at": now.isoformat(),
                "screen_left": outcome.summary,
            },
        )
    return len(clean)
