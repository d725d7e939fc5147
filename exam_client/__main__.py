"""``python -m exam_client``: a candidate without a browser. Walks the exam flow as the exam
page does (confirm, pledge, photo check from a file or the video, phone pairing streaming
``--phone-video``, waiting room, a random or scripted paper, hand-in; in a device check the
upload measurement and the report), streaming the video files over WebRTC throughout, and
prints the invigilator's danmaku. Requests lost or refused by a busy server are retried
with back-off. ``--stream-only`` logs in and streams without walking.

Exit codes: 0 when it ran and stopped (duration reached, file ended, Ctrl-C, handed in); 2
with a one-line message when it cannot run (login refused, server unreachable, unreadable
file, offer refused, a step refused, bad arguments).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from exam_client.headless import CandidateError, HeadlessCandidate, probe_media

PROG = "python -m exam_client"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Headless candidate: log in with the sitting password and ID number and walk the "
            "exam as the exam page does (confirm, pledge, photo check, phone, waiting room, "
            "answers, hand-in; a device check's measurement and report), streaming a video "
            "file over WebRTC as the first view (webcam + microphone) and another as the "
            "second view (phone), and print the invigilator's danmaku."
        ),
    )
    parser.add_argument(
        "--server",
        default="http://127.0.0.1:8000",
        help="server base URL (default: %(default)s)",
    )
    parser.add_argument("--password", required=True, help="the sitting password (考试口令)")
    parser.add_argument(
        "--id-number", required=True, help="the candidate's ID-card number (身份证号)"
    )
    parser.add_argument("--video", required=True, type=Path, help="file streamed as the first view")
    parser.add_argument(
        "--phone-video", type=Path, help="file streamed as the second view (phone camera)"
    )
    parser.add_argument("--loop", action="store_true", help="repeat the files endlessly")
    parser.add_argument(
        "--duration",
        type=float,
        metavar="S",
        help="stream S seconds once answering (then hand in), or once streaming with "
        "--stream-only (default: until the file ends, or never with --loop)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only danmaku and errors")
    parser.add_argument(
        "--photo",
        type=Path,
        help="picture sent to the photo check (default: the video's first frame)",
    )
    parser.add_argument(
        "--answers",
        type=Path,
        help='JSON object of answers by question number, e.g. {"1": "A", "2": ["B", "C"], '
        '"3": true, "4": "text", "5": null} (null: left blank); the others random '
        "(default: all random)",
    )
    parser.add_argument(
        "--invigilator",
        metavar="USER:PASSWORD",
        help="staff login that admits the candidate when the photo check goes to the "
        "invigilator (default: wait for a person)",
    )
    parser.add_argument(
        "--no-hand-in",
        action="store_true",
        help="answer, then keep streaming without handing in",
    )
    parser.add_argument(
        "--stream-only",
        action="store_true",
        help="log in and stream without walking the flow",
    )
    parser.add_argument(
        "--retry-seconds",
        type=float,
        default=120.0,
        metavar="S",
        help="how long a request is retried once the server was reached (default: %(default)s)",
    )
    return parser


def _answers(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CandidateError("bad_answers_file", f"cannot read answers from {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CandidateError("bad_answers_file", f"{path} must hold a JSON object")
    return {str(k): v for k, v in data.items()}


async def _walk(candidate: HeadlessCandidate, args: argparse.Namespace) -> bool:
    """The flow up to answering (and the answers), or the device check; True when there is
    a paper to hand in."""
    out = logging.getLogger("exam_client")
    invigilator = None
    if args.invigilator:
        user, _, password = args.invigilator.partition(":")
        invigilator = (user, password)
    result = await candidate.walk_to_answering(
        args.video,
        args.phone_video,
        loop=args.loop,
        invigilator=invigilator,
        photo=args.photo,
        timeout=24 * 3600.0,  # the waiting room may be long; Ctrl-C or --duration ends it
    )
    if "report" in result:
        report = result["report"]
        parts = ("camera", "microphone", "phone", "upload")
        failed = [p for p in parts if not report.get(f"{p}_ok")]
        out.warning(
            "device check %s",
            "passed" if report.get("passed") else f"NOT passed: {', '.join(failed) or '?'}",
        )
        return False
    saved = await candidate.answer_paper(result, _answers(args.answers))
    out.info("answered %d questions", saved)
    return not args.no_hand_in


def _fail(message: str) -> int:
    print(f"exam_client: error: {message}", file=sys.stderr, flush=True)
    return 2


async def run(args: argparse.Namespace) -> int:
    views = [("first", args.video)]
    if args.phone_video is not None:
        views.append(("second", args.phone_video))
    for _, path in views:
        probe_media(path)  # a clear error before anything touches the network

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    if args.photo is not None and not args.photo.is_file():
        raise CandidateError("photo_not_found", f"photo file not found: {args.photo}")
    _answers(args.answers)  # a bad file fails before anything touches the network
    async with HeadlessCandidate(
        args.server, args.password, args.id_number, retry_seconds=args.retry_seconds
    ) as candidate:
        await candidate.login()
        try:
            await candidate.connect_ws(wait=True, timeout=10)
        except (TimeoutError, CandidateError) as exc:
            logging.getLogger("exam_client").warning("no danmaku channel: %s", exc)
        hand_in = False
        if args.stream_only:
            for view, path in views:
                await candidate.start_view(view, path, loop=args.loop)
        else:
            walk = asyncio.create_task(_walk(candidate, args))
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({walk, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not walk.done():
                walk.cancel()
                return 0
            hand_in = walk.result()
            if not hand_in and args.duration is None and not args.loop:
                return 0  # a device check is over

        async def print_danmaku() -> None:
            while True:
                item = await candidate.danmaku.get()
                print(f"[danmaku {item.id}] {item.text}", flush=True)

        waiters = [asyncio.create_task(stop.wait(), name="signal")]
        if not args.loop:
            waiters.append(asyncio.create_task(candidate.media_ended(), name="ended"))
        printer = asyncio.create_task(print_danmaku(), name="danmaku")
        try:
            await asyncio.wait(waiters, timeout=args.duration, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (*waiters, printer):
                task.cancel()
            while not candidate.danmaku.empty():  # anything that arrived at the last moment
                item = candidate.danmaku.get_nowait()
                print(f"[danmaku {item.id}] {item.text}", flush=True)
        if hand_in and not stop.is_set():
            state = await candidate.hand_in()
            logging.getLogger("exam_client").warning("handed in: %s", state.get("step"))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.duration is not None and args.duration <= 0:
        return _fail("--duration must be positive")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    logging.getLogger("exam_client").setLevel(logging.WARNING if args.quiet else logging.INFO)
    try:
        return asyncio.run(run(args))
    except CandidateError as exc:
        return _fail(exc.message)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
