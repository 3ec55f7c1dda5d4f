"""``python -m chatlab VERB ...``: the command line.

Verbs: ``demo`` (the newcomer's first run), ``server``, ``client``, ``send``,
``netem`` and ``bench``.  Each verb's work lives in its own module; this file
only parses arguments and turns chatlab's typed errors into one clear line.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

from .errors import ChatlabError


def _configure_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


def _cmd_server(args: argparse.Namespace) -> int:
    from .protocol import describe
    from .server import FloodLimit, serve

    options: dict[str, object] = {"selector": args.selector, "max_clients": args.max_clients}
    if args.no_flood_limit:
        options["flood_limit"] = None
    else:
        options["flood_limit"] = FloodLimit(rate=args.flood_rate)
    if args.verbose >= 1:
        frames = logging.getLogger("chatlab.frames")
        options["on_frame"] = lambda direction, who, frame: frames.info(
            "%s %-10s %s", "->" if direction == "in" else "<-", who, describe(frame))
    serve(args.host, args.port, **options)
    return 0


def _cmd_client(args: argparse.Namespace) -> int:
    from .terminal import run_terminal_client

    return run_terminal_client(args.address, args.nick, download_dir=args.download_dir)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(selector=args.selector)


def _cmd_netem(args: argparse.Namespace) -> int:
    from .netem import main as netem_main

    return netem_main(args.rest)


def _cmd_send(args: argparse.Namespace) -> int:
    from .sendfile import run_send

    return run_send(args)


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main

    return bench_main(args.rest)


def _cmd_student_edition(args: argparse.Namespace) -> int:
    from .edition import main as edition_main

    return edition_main(args.rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chatlab", description="chatlab: a socket-programming lab kit built around a chat room.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v: log connections and each frame; -vv: debug")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    demo = verbs.add_parser("demo", help="start an embedded server, let a few scripted clients chat, print the transcript")
    demo.add_argument("--selector", default="select", choices=["select", "poll", "epoll"])
    demo.set_defaults(run=_cmd_demo)

    server = verbs.add_parser("server", help="run a chat server until Ctrl-C")
    server.add_argument("--host", default="127.0.0.1", help="address to listen on; 0.0.0.0 for a whole class (default 127.0.0.1)")
    server.add_argument("--port", type=int, default=7777, help="port to listen on; 0 lets the OS choose (default 7777)")
    server.add_argument("--selector", default="select", choices=["select", "poll", "epoll"], help="the event loop's backend")
    server.add_argument("--max-clients", type=int, default=200)
    server.add_argument("--flood-rate", type=float, default=5.0, help="chat messages per second per client before it is slowed")
    server.add_argument("--no-flood-limit", action="store_true", help="turn flood control off (load tests)")
    server.set_defaults(run=_cmd_server)

    client = verbs.add_parser("client", help="an interactive terminal chat client")
    client.add_argument("--nick", required=True)
    client.add_argument("--download-dir", default="downloads", help="where /accept saves files (default ./downloads)")
    client.add_argument("address", metavar="HOST:PORT")
    client.set_defaults(run=_cmd_client)

    send = verbs.add_parser("send", help="send a file to another user, with a progress bar")
    send.add_argument("file")
    send.add_argument("--to", required=True, metavar="NICK")
    send.add_argument("--nick", default=None, help="your nickname (default: a generated one)")
    send.add_argument("--strategy", default="adaptive", choices=["sleep", "fixed", "adaptive"])
    send.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    send.add_argument("address", metavar="HOST:PORT")
    send.set_defaults(run=_cmd_send)

    netem = verbs.add_parser("netem", help="a link emulator: a TCP proxy adding delay, a rate cap and re-splitting", add_help=False)
    netem.add_argument("rest", nargs=argparse.REMAINDER)
    netem.set_defaults(run=_cmd_netem)

    bench = verbs.add_parser("bench", help="measure the kit against the alternatives (see README, Performance)", add_help=False)
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    bench.set_defaults(run=_cmd_bench)

    edition = verbs.add_parser("student-edition", help="write the student notebooks (solutions removed) into OUT_DIR", add_help=False)
    edition.add_argument("rest", nargs=argparse.REMAINDER)
    edition.set_defaults(run=_cmd_student_edition)
    return parser


PASS_THROUGH = {"netem": _cmd_netem, "bench": _cmd_bench, "student-edition": _cmd_student_edition}  # verbs that parse their own arguments


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verb_at = next((i for i, word in enumerate(argv) if not word.startswith("-")), None)
    if verb_at is not None and argv[verb_at] in PASS_THROUGH:
        _configure_logging(sum(word.count("v") for word in argv[:verb_at] if word.startswith("-v")))
        return PASS_THROUGH[argv[verb_at]](argparse.Namespace(rest=argv[verb_at + 1 :]))
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    _configure_logging(args.verbose)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except KeyboardInterrupt:
        return 0
    except (ChatlabError, OSError, ValueError) as exc:
        print(f"chatlab {args.verb}: {exc}", file=sys.stderr)
        return 1


def server_main() -> int:
    return main(["server", *sys.argv[1:]])


def client_main() -> int:
    return main(["client", *sys.argv[1:]])
