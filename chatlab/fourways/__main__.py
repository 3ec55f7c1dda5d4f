"""``python -m chatlab.fourways KIND [--port P]``: run one server until stdin closes.

Prints the port it listens on (one line), so a parent process can connect.
"""

from __future__ import annotations

import argparse
import sys
import threading

from . import SERVERS, open_listener


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chatlab.fourways", description=__doc__)
    parser.add_argument("kind", choices=sorted(SERVERS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    listener = open_listener(args.host, args.port)
    stop = threading.Event()
    def run() -> None:
        try:
            SERVERS[args.kind](listener, stop)
        except Exception as exc:  # one line, not a thread traceback
            print(f"chatlab.fourways {args.kind} failed: {exc!r}", file=sys.stderr)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    print(listener.getsockname()[1], flush=True)
    try:
        sys.stdin.read()  # the parent closes our stdin to stop us
    except KeyboardInterrupt:
        pass
    stop.set()
    thread.join(timeout=5)
    listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
