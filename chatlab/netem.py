"""A link emulator: a loopback TCP proxy that behaves like a real network path.

On loopback every ``send()`` arrives a few microseconds later, at gigabytes
per second, usually in one piece.  Real networks are slower, farther away and
cut your byte stream wherever they like.  Code that "works on my machine" often
only works because loopback hides all three.  :class:`LinkEmulator` puts them
back: point a client at ``link.address`` instead of the server, and every byte
in each direction goes through this pipeline::

    source socket
        |  recv() only while the queue has room: when it is full we stop
        v  reading, and TCP flow control pushes back on the sender
    [ queue ]        bounded bottleneck queue       (LinkProfile.queue_bytes)
        |  token bucket: at most ``rate`` bytes per second leave the queue
        v
    [ wire ]         each chunk arrives ``delay`` seconds after it was sent
        |
        v
    [ splitter ]     optional: write a random-length piece, pause, repeat
        |
        v
    destination socket

A FIN (the source's ``recv()`` returned ``b''``) travels the same path: it is
queued behind the data, crosses the wire with the same delay, and is passed
on with ``shutdown(SHUT_WR)`` once everything before it was written.

Example::

    from chatlab.netem import LinkEmulator, LinkProfile

    profile = LinkProfile(delay=0.020, rate=50e6 / 8, split=True, seed=1)
    with LinkEmulator(target=("127.0.0.1", server_port), profile=profile) as link:
        sock = socket.create_connection(link.address)   # RTT is now >= 40 ms
        ...
        print(link.stats)

One profile applies to both directions.  To make the directions differ, pass
``upstream=`` (client to target) and/or ``downstream=`` (target to client);
each one overrides ``profile`` for its direction.

For UDP, :class:`DatagramLink` and :class:`DatagramProfile` (defined in
:mod:`chatlab.netem_udp`, importable from here) lose, duplicate, reorder,
delay and rate-limit datagrams, with seeded randomness (notebook 10).

Everything runs on one background thread with a :mod:`selectors` loop over
non-blocking sockets, so this module is also a worked example of the
event-loop style that the chat server uses.  The pipeline of one connection
(the queue, token bucket, wire and splitter above) is in :mod:`chatlab.netem_pipe`;
this module has the profile, the statistics, the loop and the command line.
Standard library only; works on Linux, macOS and Windows.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import struct
import sys
import time
from dataclasses import dataclass
from typing import Callable

from .i18n import _, translate_argparse

# The pipeline of one connection; its constants stay importable from here (notebook 06 reads them).
from .netem_pipe import BURST_SECONDS, MIN_BURST, PACKET, READ_LOW_WATER, RECV_SIZE, _Connection  # noqa: F401
from .netem_udp import DatagramLink, DatagramPath, DatagramProfile, DatagramStats, PathStats
from .proxyloop import LISTENER, WAKER, ProxyLoop

__all__ = ["LinkEmulator", "LinkProfile", "LinkStats", "main",
           "DatagramLink", "DatagramPath", "DatagramProfile", "DatagramStats", "PathStats"]

Address = tuple[str, int]

# The kernel's own receive buffers on the emulator's sockets.  Kept small so
# that a sender runs into *our* bounded queue quickly rather than into several
# megabytes of invisible kernel buffering first.
KERNEL_RCVBUF = 64 * 1024

# connect_ex() results that mean "connecting, not finished yet".  Windows
# reports WSAEWOULDBLOCK (10035), which is not errno.EWOULDBLOCK there.
_IN_PROGRESS = {errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, getattr(errno, "WSAEWOULDBLOCK", 10035)}
# SO_LINGER on with a zero timeout: close() sends a RST instead of a FIN.
_LINGER_RESET = struct.pack("ii", 1, 0)

_LISTENER, _WAKER = LISTENER, WAKER  # selector data tags for the two sockets that are not connections


@dataclass(frozen=True)
class LinkProfile:
    """How the emulated link behaves in one direction (or both).

    The defaults describe a perfect link (no delay, no rate limit, no
    splitting), so ``LinkProfile()`` is a transparent proxy.

    Attributes:
        delay: one-way propagation delay in seconds.  With the same profile
            both ways, a round trip takes at least ``2 * delay``.
        rate: bottleneck rate in **bytes** per second (50 Mbit/s is
            ``50e6 / 8``), or ``None`` for unlimited.
        split: re-split the stream: write whatever has arrived in pieces of
            random length (1 to ``max_segment`` bytes), pausing
            ``split_gap`` seconds between pieces, so the receiver sees
            messages cut in two and glued together.
        seed: seed for the splitter's random numbers; the same seed gives
            the same cuts for the same traffic.  ``None``: different every run.
        max_segment: longest piece the splitter writes at once.
        split_gap: pause between two pieces when splitting, long enough that
            the receiver really gets them from separate ``recv()`` calls.
            It also caps throughput at about ``max_segment / 2 / split_gap``
            bytes per second while splitting (32 MB/s with the defaults).
        queue_bytes: capacity of the bottleneck queue.  When it is full the
            emulator stops reading from the sender.
        max_in_flight: most bytes on the wire plus arrived-but-not-yet-written
            at once; transmission pauses above it.  A rate-limited link holds
            about ``rate * delay`` on the wire anyway; this bounds memory for
            unlimited links and for receivers that stop reading.
    """

    delay: float = 0.0
    rate: float | None = None
    split: bool = False
    seed: int | None = None
    max_segment: int = 64 * 1024
    split_gap: float = 0.001
    queue_bytes: int = 256 * 1024
    max_in_flight: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.delay < 0:
            raise ValueError(f"delay must be >= 0 seconds, not {self.delay!r}")
        if self.rate is not None and self.rate <= 0:
            raise ValueError(f"rate must be > 0 bytes/s or None, not {self.rate!r}")
        if self.max_segment < 1:
            raise ValueError(f"max_segment must be >= 1 byte, not {self.max_segment!r}")
        if self.split_gap < 0:
            raise ValueError(f"split_gap must be >= 0 seconds, not {self.split_gap!r}")
        if self.queue_bytes < 1 or self.max_in_flight < 1:
            raise ValueError("queue_bytes and max_in_flight must be >= 1 byte")

    @property
    def rtt(self) -> float:
        """Round-trip propagation time, in seconds, if both directions use this profile."""
        return 2 * self.delay

    @property
    def bdp(self) -> float | None:
        """Bandwidth-delay product in bytes: ``rate * rtt``, or ``None`` if the rate is unlimited.

        A sender needs at least this many unacknowledged bytes in flight to
        keep the link busy; with less it spends part of every round trip idle.
        """
        return None if self.rate is None else self.rate * self.rtt

    def describe(self) -> str:
        """A one-line human summary, e.g. ``'delay 20 ms, rate 50 Mbit/s, split'``.

        Returns:
            The summary.
        """
        rate = _("unlimited rate") if self.rate is None else _("rate {rate:g} Mbit/s").format(rate=self.rate * 8 / 1e6)
        parts = [_("delay {delay:g} ms").format(delay=self.delay * 1000), rate]
        if self.split:
            seed = "" if self.seed is None else _(", seed {seed}").format(seed=self.seed)
            parts.append(_("split (max {size} B{seed})").format(size=self.max_segment, seed=seed))
        return _(", ").join(parts)


@dataclass(frozen=True)
class LinkStats:
    """A snapshot of what a :class:`LinkEmulator` has done so far.

    Attributes:
        connections: connections accepted since start.
        active: connections currently open.
        bytes_up: bytes delivered client -> target.
        bytes_down: bytes delivered target -> client.
        resets: connections torn down abnormally (reset, broken pipe, target
            refused); every other connection ended with a FIN each way.
        buffered: bytes currently held inside the emulator (queues, wire, splitter).
    """

    connections: int = 0
    active: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    resets: int = 0
    buffered: int = 0


class LinkEmulator(ProxyLoop):
    """A TCP proxy on loopback that adds delay, a rate limit and stream splitting.

    Use it as a context manager, or call :meth:`start` and :meth:`close`
    yourself.  Every connection accepted on :attr:`address` is forwarded to
    ``target``; each direction goes through its own queue, wire and splitter
    (see the module docstring).

    Args:
        target: ``(host, port)`` to forward connections to.
        profile: applied to both directions; ``None`` means ``LinkProfile()``,
            a perfect link.
        upstream: overrides ``profile`` for client -> target.
        downstream: overrides ``profile`` for target -> client.
        listen: ``(host, port)`` to listen on.  Port 0 (the default) lets the
            OS choose a free port; read it back from :attr:`address`.
    """

    THREAD_NAME = "chatlab-netem"
    DESCRIBED = "the link emulator"

    def __init__(
        self,
        target: Address,
        profile: LinkProfile | None = None,
        *,
        upstream: LinkProfile | None = None,
        downstream: LinkProfile | None = None,
        listen: Address = ("127.0.0.1", 0),
    ) -> None:
        super().__init__(target, listen)
        profile = profile if profile is not None else LinkProfile()
        self.upstream = upstream if upstream is not None else profile
        self.downstream = downstream if downstream is not None else profile
        self._closed = False
        self._connections: set[_Connection] = set()
        self._target_family = socket.AF_INET
        self._target_addr: tuple = self.target
        # Counters; only the loop thread changes them.  Other threads read
        # self._stats, an immutable snapshot the loop replaces as it goes.
        self._accepted = 0
        self._resets = 0
        self._closed_up = 0
        self._closed_down = 0
        self._stats = LinkStats()

    # ----------------------------------------------------------- public API

    @property
    def stats(self) -> LinkStats:
        """A :class:`LinkStats` snapshot, a moment old at most."""
        return self._stats

    @property
    def rtt(self) -> float:
        """Round-trip propagation delay in seconds: upstream delay + downstream delay."""
        return self.upstream.delay + self.downstream.delay

    def __repr__(self) -> str:
        where = f"{self._address[0]}:{self._address[1]}" if self._address else "not started"
        return (f"<LinkEmulator {where} -> {self.target[0]}:{self.target[1]},"
                f" up: {self.upstream.describe()}; down: {self.downstream.describe()}>")

    # ------------------------------------------------------ the loop thread

    def _resolve_target(self) -> None:
        found = socket.getaddrinfo(self.target[0], self.target[1], type=socket.SOCK_STREAM)
        family, _type, _proto, _name, addr = found[0]
        self._target_family, self._target_addr = family, addr

    def _open_listener(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.listen[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            # Set before listen(): accepted sockets inherit it, and the TCP
            # window is negotiated from it during the handshake.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, KERNEL_RCVBUF)
            sock.bind(self.listen)
            sock.listen()
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def _run(self) -> None:
        assert self._selector is not None
        try:
            while not self._stopping:
                for key, mask in self._selector.select(self._timeout()):
                    if key.data is _LISTENER:
                        self._accept()
                    elif key.data is _WAKER:
                        self._drain_waker()
                    elif key.data in self._connections:  # an earlier event may have closed it
                        self._guard(key.data, key.data.on_event, key.fileobj, mask)
                now = time.perf_counter()
                for conn in list(self._connections):
                    if not self._guard(conn, conn.pump, now):
                        continue
                    if conn.done:
                        self._drop(conn, abort=False)
                    else:
                        self._update_interest(conn)
                self._publish_stats()
        except BaseException as exc:
            self.error = exc  # a bug: record it, then let threading report it
            raise
        finally:
            self._close_everything()

    def _timeout(self) -> float | None:
        """Seconds select() may sleep: until the earliest deadline, or forever if there is none."""
        deadlines = [d for d in (c.deadline() for c in self._connections) if d is not None]
        if not deadlines:
            return None  # only a socket event (or the waker) can change anything
        return max(0.0, min(deadlines) - time.perf_counter())

    def _accept(self) -> None:
        assert self._listener is not None
        while True:  # several clients may be waiting
            try:
                client, _address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return  # e.g. the client gave up already (ECONNABORTED): keep serving the others
            self._open_connection(client)

    def _open_connection(self, client: socket.socket) -> None:
        """Start forwarding a freshly accepted client: begin a non-blocking connect to the target."""
        self._accepted += 1
        try:
            server = socket.socket(self._target_family, socket.SOCK_STREAM)
        except OSError:  # e.g. out of file descriptors: turn this client away, keep the others
            client.close()
            self._resets += 1
            return
        conn = _Connection(self._accepted, client, server, self.upstream, self.downstream, time.perf_counter())
        self._connections.add(conn)
        if self._guard(conn, self._start_connect, conn):  # a refusal resets the client
            self._update_interest(conn)

    def _start_connect(self, conn: _Connection) -> None:
        """Make both sockets non-blocking and start connecting to the target.

        Raises:
            OSError: the connection failed at once (e.g. refused).
        """
        for sock in (conn.client, conn.server):
            sock.setblocking(False)
            # No Nagle: the emulator decides when bytes leave, not the kernel.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, KERNEL_RCVBUF)
        err = conn.server.connect_ex(self._target_addr)
        if err == 0:
            conn.connecting = False  # loopback connects can finish at once
        elif err not in _IN_PROGRESS:
            raise OSError(err, os.strerror(err))

    def _guard(self, conn: _Connection, fn: Callable[..., None], *args: object) -> bool:
        """Call ``fn(*args)``; on a socket error tear down ``conn`` (only that one).

        Returns:
            True if ``fn`` succeeded, False if ``conn`` was dropped.
        """
        try:
            fn(*args)
            return True
        except OSError:
            self._drop(conn, abort=True)
            return False

    def _set_interest(self, sock: socket.socket, mask: int, data: object) -> None:
        assert self._selector is not None
        try:
            key = self._selector.get_key(sock)
        except KeyError:
            if mask:
                self._selector.register(sock, mask, data)
            return
        if not mask:
            self._selector.unregister(sock)  # selectors cannot watch "no events"
        elif key.events != mask:
            self._selector.modify(sock, mask, data)

    def _update_interest(self, conn: _Connection) -> None:
        for sock in (conn.client, conn.server):
            self._set_interest(sock, conn.interest(sock), conn)

    def _drop(self, conn: _Connection, abort: bool) -> None:
        """Close both sockets of ``conn``.

        Args:
            conn: the connection.
            abort: close with a RST (SO_LINGER 0) instead of a FIN, so that a
                reset on one side shows up as a reset on the other, as it
                would across a real network path.
        """
        self._connections.discard(conn)
        for sock in (conn.client, conn.server):
            if self._selector is not None:
                try:
                    self._selector.unregister(sock)
                except (KeyError, ValueError):
                    pass
            if abort:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
                except OSError:
                    pass
            sock.close()
        self._closed_up += conn.up.delivered
        self._closed_down += conn.down.delivered
        if abort:
            self._resets += 1

    def _publish_stats(self) -> None:
        conns = list(self._connections)
        self._stats = LinkStats(
            connections=self._accepted,
            active=len(conns),
            bytes_up=self._closed_up + sum(c.up.delivered for c in conns),
            bytes_down=self._closed_down + sum(c.down.delivered for c in conns),
            resets=self._resets,
            buffered=sum(c.up.held + c.down.held for c in conns),
        )

    def _close_everything(self) -> None:
        """Close every connection and our own sockets.  Runs on the loop thread as it exits."""
        if self._closed:
            return
        self._closed = True
        for conn in list(self._connections):
            self._drop(conn, abort=False)
        self._close_selector_sockets([])
        self._publish_stats()


# --------------------------------------------------------------------- CLI


def _host_port(text: str, allow_zero: bool = False) -> Address:
    """Parse ``HOST:PORT`` (``[::1]:PORT`` for IPv6).

    Args:
        text: the command-line value.
        allow_zero: accept port 0 ("any free port").

    Returns:
        ``(host, port)``.

    Raises:
        argparse.ArgumentTypeError: if ``text`` is not HOST:PORT.
    """
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not (0 if allow_zero else 1) <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(_("expected HOST:PORT, got {text!r}").format(text=text))
    return host, int(port)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatlab netem",
        description=_("Forward TCP connections to TARGET through an emulated network link "
                      "(one-way delay, rate limit, random re-splitting of the byte stream). "
                      "Point your client at the address it prints. The same settings apply in both directions."),
    )
    parser.add_argument("--target", required=True, type=_host_port, metavar="HOST:PORT",
                        help=_("where to forward connections"))
    parser.add_argument(
        "--listen",
        default=("127.0.0.1", 0),
        type=lambda s: _host_port(s, allow_zero=True),
        metavar="HOST:PORT",
        help=_("where to listen (default 127.0.0.1:0, any free port)"),
    )
    parser.add_argument("--delay-ms", type=float, default=20.0,
                        help=_("one-way delay in milliseconds (default 20; RTT is twice this)"))
    parser.add_argument("--rate-mbit", type=float, default=50.0,
                        help=_("bottleneck rate in Mbit/s (default 50; 0 = unlimited)"))
    parser.add_argument("--split", action="store_true", help=_("re-split the byte stream at random points"))
    parser.add_argument("--max-segment", type=int, default=LinkProfile.max_segment,
                        help=_("longest piece when splitting, in bytes"))
    parser.add_argument("--queue-kb", type=float, default=LinkProfile.queue_bytes / 1024,
                        help=_("bottleneck queue size in KiB (default 256)"))
    parser.add_argument("--seed", type=int, default=None, help=_("seed for the splitter (default: random)"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a link emulator from the command line until Ctrl-C.

    ``python -m chatlab netem --target HOST:PORT [--listen HOST:PORT]
    [--delay-ms 20] [--rate-mbit 50] [--split] [--seed N]``

    Args:
        argv: the arguments after the subcommand; ``None`` means ``sys.argv[1:]``.

    Returns:
        The exit status: 0 after Ctrl-C, 1 if the emulator could not start or died.
    """
    translate_argparse()
    args = _build_parser().parse_args(argv)
    try:
        profile = LinkProfile(
            delay=args.delay_ms / 1000,
            rate=args.rate_mbit * 1e6 / 8 if args.rate_mbit > 0 else None,
            split=args.split,
            seed=args.seed,
            max_segment=args.max_segment,
            queue_bytes=max(1, int(args.queue_kb * 1024)),
        )
    except ValueError as exc:
        print(f"netem: {exc}", file=sys.stderr)
        return 2
    link = LinkEmulator(args.target, profile, listen=args.listen)
    try:
        link.start()
        host, port = link.address
        target = f"{args.target[0]}:{args.target[1]}"
        listening = _("listening on {host}:{port}, forwarding to {target}").format(host=host, port=port, target=target)
        print("netem: " + listening, flush=True)
        print("netem: " + _("{profile} each way, RTT {rtt:g} ms. Ctrl-C to stop.").format(
            profile=profile.describe(), rtt=profile.rtt * 1000), flush=True)
        while link.running:
            time.sleep(0.2)  # short sleeps: on Windows a blocking join() would not see Ctrl-C
        print("netem: " + _("the emulator stopped unexpectedly: {error!r}").format(error=link.error), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"netem: {exc}", file=sys.stderr)
        return 1
    finally:
        link.close()
    s = link.stats
    stopped = _("stopped. {connections} connection(s), {up} bytes up, {down} bytes down, {resets} reset(s).")
    print("netem: " + stopped.format(connections=s.connections, up=s.bytes_up, down=s.bytes_down, resets=s.resets),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
