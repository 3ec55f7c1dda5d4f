"""``python -m chatlab VERB ...``: the command line.

Verbs: ``demo`` (the newcomer's first run), ``server``, ``client``, ``send``,
``netem`` and ``bench``.  Each verb's work lives in its own module; this file
only parses arguments and turns chatlab's typed errors into one clear line.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from typing import Callable, Sequence

from .client import DEFAULT_ADDRESS, DEFAULT_HOST, DEFAULT_PORT
from .errors import ChatlabError
from .i18n import _, translate_argparse


def _configure_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S")


def _error(verb: str, text: str) -> None:
    """One line on stderr, naming the verb: what was wrong and what to try."""
    print(f"chatlab {verb}: {text}", file=sys.stderr, flush=True)


def port_number(text: str) -> int:
    """argparse type for ``--port``: 0 to 65535, or an error that says "invalid port"."""
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(
            _("invalid port {text!r}: a port is a number from 1 to 65535 (0 lets the OS choose)").format(text=text)
        )
    return int(text)


def room_password(text: str) -> tuple[str, str]:
    """argparse type for ``--room-password ROOM=PASSWORD``."""
    room, sep, password = text.partition("=")
    if not sep or not room or not password:
        raise argparse.ArgumentTypeError(_("expected ROOM=PASSWORD, got {text!r}").format(text=text))
    if room != room.strip() or " " in room:
        raise argparse.ArgumentTypeError(_("room names have no spaces: {room!r}").format(room=room))
    return room, password


def oper_login(text: str) -> tuple[str, str]:
    """argparse type for ``--oper NAME=PASSWORD``."""
    name, sep, password = text.partition("=")
    if not sep or not name or not password or " " in name:
        raise argparse.ArgumentTypeError(
            _("expected NAME=PASSWORD (a name without spaces), got {text!r}").format(text=text))
    return name, password


def server_options(args: argparse.Namespace) -> dict[str, object]:
    """The ``Server(...)`` keyword arguments that ``chatlab server``'s options ask for."""
    from .core.chatroom import normalize_name
    from .core.protocol import describe
    from .server import FloodLimit

    options: dict[str, object] = {"selector": args.selector, "max_clients": args.max_clients}
    options["flood_limit"] = None if args.no_flood_limit else FloodLimit(rate=args.flood_rate)
    from .core.chatroom import Settings

    passwords: dict[str, str] = {}
    for room, password in args.room_password or []:
        if normalize_name(room) in (normalize_name(known) for known in passwords):  # the key the server uses
            raise ValueError(_("--room-password gives room {room!r} twice").format(room=room))
        if normalize_name(room.lstrip("#")) == normalize_name(Settings.default_room):
            raise ValueError(_("--room-password cannot protect {room!r}: everyone lands in the default room on"
                               " arrival, so its password would only keep out those who left and came back;"
                               " protect another room, e.g. --room-password class=PASSWORD").format(room=room))
        passwords[room] = password
    if passwords:
        options["room_passwords"] = passwords
    if args.tls_cert:
        options["tls"] = tls_options(args.tls_cert, args.tls_key)
    elif args.tls_key:
        raise ValueError(_("--tls-key goes with --tls-cert (the certificate it is the key of)"))
    if getattr(args, "oper", None):
        options["opers"] = dict(args.oper)
    if args.verbose >= 1:
        frames = logging.getLogger("chatlab.frames")
        options["on_frame"] = lambda direction, who, frame: frames.info(
            "%s %-10s %s", "->" if direction == "in" else "<-", who, describe(frame))
    return options


def tls_options(cert: str, key: str | None) -> object:
    """The server's TLS context from ``--tls-cert``/``--tls-key``, or a ValueError that says what is wrong."""
    import ssl

    from .tls import server_context

    try:
        return server_context(cert, key)
    except FileNotFoundError as exc:
        raise ValueError(_("cannot read {path}: no such file (make one with: python -m chatlab certs)").format(
            path=exc.filename or cert)) from None
    except (ssl.SSLError, OSError) as exc:
        raise ValueError(_("{cert} and {key} are not a certificate and its private key: {error}").format(
            cert=cert, key=key or cert, error=exc)) from None


def serve(host: str = "127.0.0.1", port: int = 0, **options: object) -> None:
    """Run a server in the foreground until Ctrl-C, then print one line: what it served."""
    from .server import Server

    server = Server(host, port, **options)  # type: ignore[arg-type]
    if server.warning:
        print(_("warning: {text}").format(text=server.warning), file=sys.stderr, flush=True)
    selector = server.config.selector
    if server.tls_context is not None:
        selector = _("{selector}, TLS and plain on the same port").format(selector=selector)
    print(_("chatlab server listening on {host}:{port} ({selector}); Ctrl-C stops it").format(
        host=server.address[0], port=server.address[1], selector=selector), flush=True)
    try:
        server.serve_forever()
    finally:
        print(_("chatlab server stopped: {summary}").format(summary=server.summary()), flush=True)


def _cmd_server(args: argparse.Namespace) -> int:
    try:
        options = server_options(args)
    except ValueError as exc:
        _error("server", str(exc))
        return 2
    try:
        serve(args.host, args.port, **options)
    except OSError as exc:
        _error("server", _listen_error(args.host, args.port, exc))
        return 1
    return 0


def _listen_error(host: str, port: int, exc: OSError) -> str:
    """Why ``host:port`` cannot be listened on, and what to try instead."""
    if exc.errno == errno.EADDRINUSE:
        return _("port {port} on {host} is already in use (another chatlab server?): stop that program,"
                 " or choose another port with --port {other}, or --port 0 to let the OS pick a free one").format(
            port=port, host=host, other=port + 1 if port < 65535 else 7778)
    if exc.errno == errno.EACCES:
        return _("not allowed to listen on port {port} (ports below 1024 need administrator rights):"
                 " choose one above 1023, e.g. --port {default}").format(port=port, default=DEFAULT_PORT)
    if exc.errno == errno.EADDRNOTAVAIL:
        return _("cannot listen on {host}: it is not an address of this machine"
                 " (try --host 127.0.0.1, or 0.0.0.0 for every interface)").format(host=host)
    return _("cannot listen on {host}:{port}: {error}").format(host=host, port=port, error=exc.strerror or exc)


def _cmd_client(args: argparse.Namespace) -> int:
    from .terminal import EXIT_REFUSED, ask_nick, run_terminal_client

    nick = args.nick
    if nick is None:
        if not sys.stdin.isatty():
            _error("client", _("--nick is missing, and stdin is not a terminal to ask for one: add --nick NAME"))
            return EXIT_REFUSED
        nick = ask_nick()
        if nick is None:
            return EXIT_REFUSED
    tls = {"tls": True, "cafile": args.cafile} if args.tls or args.cafile else {}
    return run_terminal_client(args.address, nick, download_dir=args.download_dir, connect_options=tls)


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(selector=args.selector)


def _cmd_netem(args: argparse.Namespace) -> int:
    if "--udp" in args.rest:  # datagrams: chatlab.netem_udp's own command line
        from .netem_udp import main as netem_udp_main

        return netem_udp_main(args.rest)
    from .netem import main as netem_main

    return netem_main(args.rest)


def _cmd_send(args: argparse.Namespace) -> int:
    from .sendfile import run_send

    return run_send(args)


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main

    return bench_main(args.rest)


def _cmd_certs(args: argparse.Namespace) -> int:
    from .certs import main as certs_main

    return certs_main(args.rest)


def _cmd_student_edition(args: argparse.Namespace) -> int:
    from .edition import main as edition_main

    return edition_main(args.rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m chatlab",
                                     description=_("chatlab: a socket-programming lab kit built around a chat room."))
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help=_("-v: log connections and each frame; -vv: debug"))
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")

    demo = verbs.add_parser("demo",
                            help=_("start an embedded server, let a few scripted clients chat, print the transcript"))
    demo.add_argument("--selector", default="select", choices=["select", "poll", "epoll"],
                      help=_("the event loop's backend"))
    demo.set_defaults(run=_cmd_demo)

    server = verbs.add_parser("server", help=_("run a chat server until Ctrl-C"))
    server.add_argument("--host", default=DEFAULT_HOST,
                        help=_("address to listen on; 0.0.0.0 for a whole class (default {host})").format(
                            host=DEFAULT_HOST))
    server.add_argument("--port", type=port_number, default=DEFAULT_PORT,
                        help=_("port to listen on; 0 lets the OS choose (default {port})").format(port=DEFAULT_PORT))
    server.add_argument("--selector", default="select", choices=["select", "poll", "epoll"],
                        help=_("the event loop's backend"))
    server.add_argument("--max-clients", type=int, default=200,
                        help=_("refuse connections beyond this many clients (default 200)"))
    server.add_argument("--flood-rate", type=float, default=5.0,
                        help=_("chat messages per second per client before it is slowed"))
    server.add_argument("--no-flood-limit", action="store_true", help=_("turn flood control off (load tests)"))
    server.add_argument("--room-password", action="append", type=room_password, metavar="ROOM=PASSWORD",
                        help=_("ROOM needs PASSWORD to join (repeat for more rooms; not the default room, lobby);"
                               " other rooms get the password their creator gives"))
    server.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help=_("-v: log connections and each frame; -vv: debug (also accepted before 'server')"))
    server.add_argument("--oper", action="append", type=oper_login, metavar="NAME=PASSWORD",
                        help=_("a server operator's login, for IRC's OPER (repeat for more)"))
    server.set_defaults(run=_cmd_server)

    server.add_argument("--tls-cert", metavar="PEM", help=_(
        "serve TLS too, on the same port, with this certificate (python -m chatlab certs makes one)"))
    server.add_argument("--tls-key", metavar="PEM",
                        help=_("the certificate's private key (if not in --tls-cert's file)"))
    client = verbs.add_parser("client", help=_("an interactive terminal chat client"))
    client.add_argument("--nick", default=None, help=_("your nickname (asked for when missing)"))
    client.add_argument("--download-dir", default="downloads",
                        help=_("where /accept saves files (default ./downloads)"))
    client.add_argument("--tls", action="store_true", help=_("connect with TLS, checking the server's certificate"))
    client.add_argument("--cafile", metavar="PEM",
                        help=_("the CA to trust for --tls (the class CA the teacher gives you)"))
    client.add_argument("address", metavar="HOST:PORT", nargs="?", default=DEFAULT_ADDRESS,
                        help=_("the server (default {address}, where `chatlab server` listens)").format(
                            address=DEFAULT_ADDRESS))
    client.set_defaults(run=_cmd_client)

    send = verbs.add_parser("send", help=_("send a file to another user, with a progress bar"))
    send.add_argument("file", help=_("the file to send"))
    send.add_argument("--to", required=True, metavar="NICK", help=_("the receiver's nickname"))
    send.add_argument("--nick", default=None, help=_("your nickname (default: a generated one)"))
    send.add_argument("--strategy", default="adaptive", choices=["sleep", "fixed", "adaptive"],
                      help=_("how the sender paces the chunks (default adaptive, notebook 06)"))
    send.add_argument("--direct", action="store_true",
                      help=_("send the bytes over a connection of their own to the receiver, not through the server"
                             " (falls back to the server if that connection cannot be made)"))
    send.add_argument("--timeout", type=float, default=600.0, help=_("give up after this many seconds"))
    send.add_argument("--tls", action="store_true", help=_("connect with TLS, checking the server's certificate"))
    send.add_argument("--cafile", metavar="PEM",
                      help=_("the CA to trust for --tls (the class CA the teacher gives you)"))
    send.add_argument("address", metavar="HOST:PORT",
                      help=_("the server (`chatlab server` listens on {address})").format(address=DEFAULT_ADDRESS))
    send.set_defaults(run=_cmd_send)

    netem = verbs.add_parser("netem", help=_("a link emulator: a TCP proxy adding delay, a rate cap and re-splitting"),
                             add_help=False)
    netem.add_argument("rest", nargs=argparse.REMAINDER)
    netem.set_defaults(run=_cmd_netem)

    bench = verbs.add_parser("bench", help=_("measure the kit against the alternatives (see README, Performance)"),
                             add_help=False)
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    bench.set_defaults(run=_cmd_bench)

    certs = verbs.add_parser("certs", help=_("make a class CA and a server certificate for TLS"), add_help=False)
    certs.add_argument("rest", nargs=argparse.REMAINDER)
    certs.set_defaults(run=_cmd_certs)
    edition = verbs.add_parser("student-edition",
                               help=_("write the student notebooks (solutions removed) into OUT_DIR"), add_help=False)
    edition.add_argument("rest", nargs=argparse.REMAINDER)
    edition.set_defaults(run=_cmd_student_edition)
    return parser


PASS_THROUGH = {"netem": _cmd_netem, "bench": _cmd_bench, "student-edition": _cmd_student_edition,
                "certs": _cmd_certs}  # verbs that parse their own arguments


def main(argv: Sequence[str] | None = None) -> int:
    translate_argparse()  # usage:, options:, error: in the student's language too
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
        _error(args.verb, str(exc))
        return 1


def server_main() -> int:
    return main(["server", *sys.argv[1:]])


def client_main() -> int:
    return main(["client", *sys.argv[1:]])
