"""The candidate's flow as one state machine: which action may happen in which step and
which step follows it (``TRANSITIONS``), and one way to act on an attempt (``act``).

Exam sittings (trial and formal) have eight steps, device checks seven::

    exam:         login → confirm → pledge → identity → phone → waiting → answering → submitted
    device check: login → confirm → pledge → identity → phone → device_check → finished

``Attempt.step`` is the step the candidate has to do next. Every action of the candidate,
the invigilator and the server checks its step here (``check``) and changes it here
(``move``), so no step can be skipped and the table below is the whole story of what
"pause" or "admit" may do. ``act`` loads and locks the attempt, runs the action, commits,
and only then tells the consoles and the candidate's pages (commit before publish).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from proctor.errors import Conflict, Forbidden, NotAuthenticated, NotFound
from proctor.events.bus import VIEWS_CHANNEL, Bus, candidate_channel, sitting_channel
from proctor.sitting import violations
from proctor.sitting.policy import FlowRules, rules_of
from proctor.store.db import Database
from proctor.store.tables import Attempt, Candidate, Sitting

EXAM_STEPS = (
    "login",
    "confirm",
    "pledge",
    "identity",
    "phone",
    "waiting",
    "answering",
    "submitted",
)
DEVICE_CHECK_STEPS = (
    "login",
    "confirm",
    "pledge",
    "identity",
    "phone",
    "device_check",
    "finished",
)
ENDED = frozenset({"submitted", "finished", "refused", "terminated"})

STEP_TITLES = {
    "login": "登录 Log in",
    "confirm": "个人信息确认 Confirm your details",
    "pledge": "签署承诺书 Sign the pledge",
    "identity": "拍照核验 Photo identity check",
    "phone": "登录鹰眼监控 Connect the phone (second view)",
    "waiting": "等待考试开始 Wait for the start",
    "answering": "开始作答 Answer",
    "submitted": "交卷 Handed in",
    "device_check": "设备调试 Device check",
    "finished": "完成 Done",
    "refused": "已退出 Ended",
    "terminated": "考试已终止 Ended by the invigilator",
}


#: each step in a word or two, as the staff pages show a candidate's step (a tile, a list)
STEP_WORDS = {
    "login": "Logged in 已登录",
    "confirm": "Confirming 信息确认",
    "pledge": "Pledge 承诺书",
    "identity": "ID check 拍照核验",
    "phone": "Phone setup 连接手机",
    "waiting": "Waiting 等待开考",
    "answering": "Answering 作答中",
    "submitted": "Handed in 已交卷",
    "device_check": "Device check 设备调试",
    "finished": "Done 完成",
    "refused": "Ended 已退出",
    "terminated": "Ended by invigilator 已终止",
}


#: each step as the candidate's page names it in its progress bar (Chinese, English)
STEP_NAMES: dict[str, tuple[str, str]] = {
    "login": ("登录", "Log in"),
    "confirm": ("信息确认", "Details"),
    "pledge": ("承诺书", "Pledge"),
    "identity": ("拍照核验", "Photo check"),
    "phone": ("第二视角", "Phone"),
    "waiting": ("等待开考", "Waiting"),
    "answering": ("作答", "Answer"),
    "submitted": ("交卷", "Hand in"),
    "device_check": ("设备检测", "Device check"),
    "finished": ("完成", "Done"),
}


def steps_of(kind: str) -> tuple[str, ...]:
    return DEVICE_CHECK_STEPS if kind == "device_check" else EXAM_STEPS


def next_step(kind: str, step: str) -> str:
    steps = steps_of(kind)
    return steps[steps.index(step) + 1]


# ------------------------------------------------------------------------- the table

#: ``Transition.to``: the next step of the sitting's kind (exam or device check)
NEXT = "<next>"


@dataclass(frozen=True)
class Transition:
    """An action: the steps it may happen in, the step after it (``None``: it stays),
    whether the exam must be running (not paused by an invigilator), and how a refusal
    reads: ``candidate`` (``wrong_step``, ``already_submitted``, ...) or ``staff``
    (``not_answering``, ``already_terminated``)."""

    steps: tuple[str, ...]
    to: str | None = None
    running: bool = False
    refusal: str = "candidate"


def _t(*steps: str, to: str | None = None, running: bool = False, refusal: str = "candidate"):
    return Transition(tuple(steps), to, running, refusal)


TRANSITIONS: dict[str, Transition] = {
    # the candidate (proctor.flow.steps, identity, phone, answering, device)
    "confirm": _t("confirm", to=NEXT),
    "report_info_problem": _t("confirm"),  # recorded; the candidate may still confirm
    "sign_pledge": _t("pledge", to=NEXT),
    "refuse_pledge": _t("pledge", to="refused"),
    "identity_check": _t("identity"),  # a failed check stays (and counts)
    "identity_passed": _t("identity", to=NEXT),
    "pair_phone": _t("phone"),
    "phone_done": _t("phone", to=NEXT),
    "start": _t("waiting", to="answering"),
    "read_paper": _t("answering", "submitted", "terminated"),
    "answer": _t("answering", running=True),
    "submit": _t("answering", to="submitted", running=True),
    "measure_upload": _t("device_check"),
    "device_report": _t("device_check", to=NEXT),
    # logging in again (proctor.flow.steps.login): a finished device check may be run
    # again; a pledge refused before anyone proved to be the candidate is signed now
    "run_device_check_again": _t("finished", to="device_check"),
    "reopen_pledge_at_login": _t("refused", to="pledge"),
    # the server: the end of the candidate's time (proctor.flow.answering)
    "auto_submit": _t("answering", to="submitted", running=True),
    # the invigilator (proctor.flow.identity, proctor.invigilation.control)
    "admit": _t("identity", to=NEXT),
    "identity_retry": _t("identity"),
    "identity_refuse": _t("identity", to="refused"),
    "reopen_pledge": _t("refused", to="pledge"),
    "pause": _t("answering", refusal="staff"),
    "resume": _t("answering", refusal="staff"),
    "terminate": _t("answering", to="terminated", refusal="staff"),
    "warn": _t(
        *dict.fromkeys(s for s in EXAM_STEPS + DEVICE_CHECK_STEPS if s not in ENDED),
        refusal="staff",
    ),
}


def allowed(action: str) -> tuple[str, ...]:
    """The steps ``action`` may happen in."""
    return TRANSITIONS[action].steps


@dataclass
class Ctx:
    """One candidate's flow as loaded for a request."""

    candidate: Candidate
    sitting: Sitting
    attempt: Attempt
    rules: FlowRules


def terminated_error(attempt: Attempt) -> Conflict:
    title = violations.title_of(attempt.termination_category) or ""
    return Conflict(
        "exam_terminated",
        f"监考老师已终止你的考试（{title}），不能再作答或交卷。 The invigilator has ended your "
        f"exam ({title}); answers and hand-in are no longer taken.",
    )


EXAM_PAUSED = Conflict(
    "exam_paused",
    "监考老师已暂停你的考试，暂停期间不能作答，计时已停止。 The invigilator has paused your exam: "
    "answers are not taken and your time stands still until it resumes.",
)


def _candidate_refusal(step: str, attempt: Attempt, expected: tuple[str, ...]) -> Exception:
    if step == "terminated":
        return terminated_error(attempt)
    if step == "refused":
        return Forbidden(
            "pledge_refused",
            "你已拒绝签署承诺书，本场考试已结束。 You refused the pledge; this sitting has ended "
            "for you.",
        )
    if step in ("submitted", "finished"):
        return Conflict(
            "already_submitted", "你已交卷，本场考试已结束。 You have already handed in."
        )
    want = " / ".join(STEP_TITLES.get(e, e) for e in expected)
    return Conflict(
        "wrong_step",
        f"这一步现在不能进行：你当前的步骤是「{STEP_TITLES.get(step, step)}」。 This is not the "
        f"current step ({want}); your current step is: {STEP_TITLES.get(step, step)}.",
    )


def _staff_refusal(step: str) -> Exception:
    if step == "terminated":
        return Conflict(
            "already_terminated",
            "This candidate's exam has already been ended. 该考生的考试已终止。",
        )
    return Conflict(
        "not_answering",
        f"The candidate is not answering (step: {STEP_TITLES.get(step, step)}). "
        "该考生当前不在作答中。",
    )


def check(ctx: Ctx, action: str) -> Transition:
    """Refuse ``action`` unless the candidate's step allows it (and, for the actions that
    need it, the exam is not paused)."""
    rule = TRANSITIONS[action]
    step = ctx.attempt.step
    if step not in rule.steps:
        if rule.refusal == "staff":
            raise _staff_refusal(step)
        raise _candidate_refusal(step, ctx.attempt, rule.steps)
    if rule.running and ctx.attempt.paused_at is not None:
        raise EXAM_PAUSED
    return rule


def move(ctx: Ctx, action: str, now: Any) -> str:
    """Check ``action`` and take the attempt to the step after it; the new step."""
    rule = check(ctx, action)
    return move_attempt(ctx.attempt, ctx.sitting.kind, action, now, rule)


def move_attempt(
    attempt: Attempt, kind: str, action: str, now: Any, rule: Transition | None = None
) -> str:
    """``move`` for an attempt loaded without its context (checked: ``AssertionError`` when
    the step does not allow ``action``; callers refuse with their own error first)."""
    rule = rule or TRANSITIONS[action]
    assert attempt.step in rule.steps, (action, attempt.step)
    if rule.to is not None:
        attempt.step = next_step(kind, attempt.step) if rule.to == NEXT else rule.to
    attempt.updated_at = now
    return attempt.step


# ------------------------------------------------------------------------- loading, acting


async def load(
    db: AsyncSession, candidate_id: int, *, lock: bool = False, staff: bool = False
) -> Ctx:
    """The candidate's flow; with ``lock`` the attempt row is locked until the transaction
    ends (PostgreSQL ``FOR UPDATE``; SQLite serialises writers anyway), so that two
    requests of one candidate cannot both make the same transition. The refusals say who
    asks: the candidate (``not_authenticated``) or staff (``unknown_candidate``,
    ``not_logged_in``)."""
    candidate = await db.get(Candidate, candidate_id)
    if candidate is None:
        if staff:
            raise NotFound("unknown_candidate", f"No candidate {candidate_id}.")
        raise NotAuthenticated("not_authenticated", "Please log in.")
    query = select(Attempt).where(Attempt.candidate_id == candidate_id)
    if lock:
        query = query.with_for_update()
    attempt = await db.scalar(query)
    if attempt is None:
        if staff:
            raise Conflict(
                "not_logged_in", "This candidate has not logged in yet. 该考生尚未登录。"
            )
        raise NotAuthenticated("not_authenticated", "Please log in.")
    sitting = await db.get(Sitting, candidate.sitting_id)
    assert sitting is not None
    return Ctx(candidate, sitting, attempt, rules_of(sitting.kind, sitting.flow))


T = TypeVar("T")


async def act(
    database: Database,
    bus: Bus,
    candidate_id: int,
    action: Callable[[AsyncSession, Ctx], Awaitable[T]],
    *,
    now: Any,
    staff: bool = False,
    publish: bool | Callable[[T], dict[str, Any] | None] = True,
) -> tuple[Ctx, T]:
    """Load and lock the candidate's attempt, run ``action(session, ctx)`` on it, commit,
    then publish the step to the sitting's consoles and the candidate's pages (``publish``:
    whether to, or a function of the action's result giving what the message carries
    besides the step, or None for no message). Nothing is published when the action
    raises (its changes are rolled back).

    The transaction runs on the database writer thread (``Database.write``, issue 22): on
    the application's loop, busy with 30 candidates' media, each statement's result waits
    for the loop, and an answer save held SQLite's write lock (or the attempt's row lock)
    for seconds while every other writer queued behind it. So ``action`` awaits only its
    own statements on ``session`` (no bus, no other I/O of the caller's loop); the ``Ctx``
    it returns is detached, its loaded attributes readable."""

    async def transaction(session: AsyncSession) -> tuple[Ctx, T]:
        ctx = await load(session, candidate_id, lock=True, staff=staff)
        return ctx, await action(session, ctx)

    ctx, result = await database.write(transaction)
    if publish:
        extra = publish(result) if callable(publish) else {}
        if extra is not None:
            await publish_step(bus, ctx, now, **extra)
    return ctx, result


async def publish_step(bus: Bus, ctx: Ctx, now: Any, **extra: Any) -> None:
    """Tell the sitting's consoles (and the candidate's own pages) where the candidate is
    now."""
    message = {
        "type": "flow",
        "candidate_id": ctx.candidate.id,
        "step": ctx.attempt.step,
        "at": now.isoformat(),
        **extra,
    }
    await bus.publish(sitting_channel(ctx.sitting.id), message)
    await bus.publish(candidate_channel(ctx.candidate.id), message)
    if ctx.attempt.step in ENDED:
        await end_views(bus, ctx.candidate.id)


async def end_views(bus: Bus, candidate_id: int) -> None:
    """The candidate's exam is over (handed in, device check finished, ended by the
    invigilator): both views end. The process holding the connections closes them and
    records them as ended, not lost (proctor.runtime); the phone page, told over its
    socket, stops its camera."""
    await bus.publish(VIEWS_CHANNEL, {"type": "end_views", "candidate_id": candidate_id})
