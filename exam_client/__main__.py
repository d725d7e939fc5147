"""``python -m exam_client``: stream a video file to the proctoring server as a candidate.

Exit codes: 0 when it ran and stopped (duration reached, file ended, Ctrl-C); 2 with a
one-line message when it cannot run (login refused, server unreachable, unreadable file,
offer refused, bad arguments).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from exam_client.headless import CandidateError, HeadlessCandidate, probe_media

PROG = "python -m exam_client"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Headless candidate: log in with the sitting password and ID number, stream a "
            "video file over WebRTC as the first view (webcam + microphone) and optionally "
            "another as the second view (phone), and print the invigilator's danmaku."
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
        help="stop after S seconds (default: when the file ends, or never with --loop)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only danmaku and errors")
    return parser


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

    async with HeadlessCandidate(args.server, args.password, args.id_number) as candidate:
        await candidate.login()
        try:
            await candidate.connect_ws(wait=True, timeout=10)
        except (TimeoutError, CandidateError) as exc:
            logging.getLogger("exam_client").warning("no danmaku channel: %s", exc)
        for view, path in views:
            await candidate.start_view(view, path, loop=args.loop)

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
