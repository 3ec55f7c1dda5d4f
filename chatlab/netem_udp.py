"""The link emulator for UDP: datagrams lost, duplicated, reordered, delayed and rate-limited.

:mod:`chatlab.netem` proxies TCP connections; this module is its datagram
twin (imported from there: ``from chatlab.netem import DatagramLink,
DatagramProfile``).  A TCP link can delay and cut a byte stream but never
lose or reorder it, because the kernels at both ends repair all of that.  UDP
has no such repair: what the network does to a datagram is what the
application gets.  :class:`DatagramLink` does those things on purpose, with
the same knobs as Linux's ``tc qdisc ... netem`` (``loss 10%``,
``duplicate 5%``, ``reorder 25%``, ``delay 20ms 5ms``, ``rate 1mbit``)::

    client --sendto--> link.address --(one way: loss, dup, reorder, delay, rate)--> target
    client <--sendto-- link.address <--(the other way: its own profile)------------- target

Each client address gets its own socket towards the target (like a NAT
entry), so the target's replies go back to the client that asked.  Per
datagram, in this order:

1. **loss**: dropped with probability ``loss``;
2. **rate**: it waits for the datagrams before it to be transmitted at
   ``rate`` bytes/s; if more than ``queue_bytes`` are already waiting, it is
   dropped (a full queue, *tail drop*: how real routers lose packets);
3. **delay**: it arrives ``delay`` seconds later, give or take ``jitter``
   (uniform in ``[delay - jitter, delay + jitter]``); with jitter larger than
   the gap between two datagrams the later one can overtake;
4. **reorder**: with probability ``reorder`` it skips the delay and arrives
   at once, overtaking the datagrams still on the wire (netem's rule; it
   needs ``delay > 0`` to show);
5. **duplicate**: with probability ``duplicate`` a second copy travels too,
   with a delay of its own.

The decisions come from a :class:`random.Random` seeded with ``seed``, one
generator per client and direction, and every datagram takes the same five
random numbers whatever the settings: with a seed, the same traffic loses,
copies and delays the same datagrams on every run (timings still vary by
the machine's scheduling, by a fraction of a millisecond on an idle one).

The decisions are made by :class:`DatagramPath`, a sans-I/O class (no
sockets, the clock passed in as ``now``), so they are tested without a
network; :class:`DatagramLink` is the socket loop around it, one background
thread with a :mod:`selectors` loop, as in :mod:`chatlab.netem`.

From the command line (``python -m chatlab netem --udp ...`` runs the same)::

    python -m chatlab.netem_udp --target HOST:PORT --loss-pct 10 --duplicate-pct 5 --delay-ms 20 --jitter-ms 5
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import random
import selectors
import socket
import sys
import time
from dataclasses import dataclass

from .i18n import _, translate_argparse
from .proxyloop import LISTENER, WAKER, ProxyLoop

__all__ = ["DatagramLink", "DatagramPath", "DatagramProfile", "DatagramStats", "PathStats", "main"]

Address = tuple[str, int]
MAX_DATAGRAM = 65535  # the largest a UDP socket can hand us (IPv4 payload limit is 65,507)
_WAKER, _LISTENER = WAKER, LISTENER


@dataclass(frozen=True)
class DatagramProfile:
    """What the emulated path does to datagrams in one direction (or both).

    The defaults are a perfect path: ``DatagramProfile()`` forwards every
    datagram at once, once, in order.

    Attributes:
        delay: one-way delay in seconds.
        jitter: each datagram's delay varies uniformly by up to this much
            either way (never below zero).
        loss: probability (0 to 1) that a datagram is dropped.
        duplicate: probability (0 to 1) that a datagram arrives twice.
        reorder: probability (0 to 1) that a datagram skips the delay and
            overtakes those still on the wire.
        rate: transmission rate in **bytes** per second, or ``None`` for
            unlimited.
        queue_bytes: most bytes waiting for the rate limit; a datagram that
            does not fit is dropped (tail drop).
        seed: seed of the random decisions; ``None``: different every run.
    """

    delay: float = 0.0
    jitter: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    rate: float | None = None
    queue_bytes: int = 64 * 1024
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("delay", "jitter"):
            value = getattr(self, name)
            if not value >= 0:  # also refuses NaN
                raise ValueError(f"{name} must be >= 0 seconds, not {value!r}")
        for name in ("loss", "duplicate", "reorder"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} is a probability from 0 to 1 (10% is 0.1), not {value!r}")
        if self.rate is not None and not self.rate > 0:
            raise ValueError(f"rate must be > 0 bytes/s or None, not {self.rate!r}")
        if self.queue_bytes < 1:
            raise ValueError(f"queue_bytes must be >= 1 byte, not {self.queue_bytes!r}")

    def describe(self) -> str:
        """A one-line summary in netem's words, e.g. ``'delay 20 ms ± 5 ms, loss 10%, duplicate 5%'``."""
        parts = [f"delay {self.delay * 1000:g} ms" + (f" ± {self.jitter * 1000:g} ms" if self.jitter else "")]
        for name in ("loss", "duplicate", "reorder"):
            value = getattr(self, name)
            if value:
                parts.append(f"{name} {value * 100:g}%")
        if self.rate is not None:
            parts.append(f"rate {self.rate * 8 / 1e6:g} Mbit/s")
        return ", ".join(parts)


@dataclass(frozen=True)
class PathStats:
    """What one direction did, counted in datagrams.

    ``sent`` datagrams went in; each was ``lost`` (at random), ``dropped``
    (the rate queue was full) or put on the wire, ``duplicated`` of them
    twice; ``reordered`` skipped the delay; ``delivered`` copies came out.
    """

    sent: int = 0
    lost: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    delivered: int = 0


class DatagramPath:
    """The decisions for one direction of one flow, without sockets (sans-I/O).

    Args:
        profile: what to do to the datagrams.
        rng: the random generator (seeded by the caller for reproducible runs).
    """

    def __init__(self, profile: DatagramProfile, rng: random.Random) -> None:
        self.profile = profile
        self.rng = rng
        self.free_at = 0.0  # when the rate-limited transmitter finishes what it has
        self.sent = self.lost = self.dropped = self.duplicated = self.reordered = self.delivered = 0

    def send(self, now: float, size: int) -> list[float]:
        """Decide what happens to one datagram of ``size`` bytes sent at ``now``.

        Returns:
            The times its copies arrive: ``[]`` if lost or dropped, one time,
            or two for a duplicate.
        """
        p = self.profile
        r_loss, r_dup, r_reorder = self.rng.random(), self.rng.random(), self.rng.random()
        delays = [self._delay(), self._delay()]  # drawn always, so one knob does not shift the others' dice
        self.sent += 1
        if r_loss < p.loss:
            self.lost += 1
            return []
        leaves = now
        if p.rate is not None:
            waiting = max(0.0, self.free_at - now) * p.rate  # bytes still ahead in the queue
            if waiting + size > p.queue_bytes:
                self.dropped += 1
                return []
            leaves = max(now, self.free_at) + size / p.rate
            self.free_at = leaves
        if r_reorder < p.reorder:
            self.reordered += 1
            times = [leaves]
        else:
            times = [leaves + delays[0]]
        if r_dup < p.duplicate:
            self.duplicated += 1
            times.append(leaves + delays[1])
        return times

    def _delay(self) -> float:
        p = self.profile
        return max(0.0, p.delay + self.rng.uniform(-p.jitter, p.jitter))

    def stats(self) -> PathStats:
        """A snapshot of the counters."""
        return PathStats(self.sent, self.lost, self.dropped, self.duplicated, self.reordered, self.delivered)


@dataclass(frozen=True)
class DatagramStats:
    """A snapshot of a :class:`DatagramLink`.

    Attributes:
        flows: client addresses seen so far (each has its own socket to the target).
        up: client -> target, summed over flows.
        down: target -> client, summed over flows.
        in_flight: datagram copies on the emulated wire right now.
        refused: datagrams the target's host answered with ICMP port
            unreachable (nothing listened there).
    """

    flows: int = 0
    up: PathStats = PathStats()
    down: PathStats = PathStats()
    in_flight: int = 0
    refused: int = 0


def _total(paths: list[DatagramPath]) -> PathStats:
    stats = [p.stats() for p in paths]
    fields = ("sent", "lost", "dropped", "duplicated", "reordered", "delivered")
    return PathStats(*(sum(getattr(s, f) for s in stats) for f in fields))


class _Flow:
    """One client address: its socket towards the target and a path each way."""

    def __init__(self, number: int, client: Address, sock: socket.socket,
                 up: DatagramProfile, down: DatagramProfile) -> None:
        self.client = client
        self.sock = sock
        self.up = DatagramPath(up, _rng(up.seed, f"{number}/up"))
        self.down = DatagramPath(down, _rng(down.seed, f"{number}/down"))


def _rng(seed: int | None, stream: str) -> random.Random:
    """A generator per flow and direction: seeded, each its own sequence; or unpredictable without a seed."""
    return random.Random() if seed is None else random.Random(f"{seed}/{stream}")


class DatagramLink(ProxyLoop):
    """A UDP forwarder on loopback that loses, copies, reorders, delays and rate-limits datagrams.

    Use it as a context manager.  Send datagrams to :attr:`address` instead
    of ``target``; the target's replies come back from :attr:`address`.

    Args:
        target: ``(host, port)`` of the UDP server.
        profile: both directions; ``None`` means a perfect path.
        upstream: overrides ``profile`` for client -> target.
        downstream: overrides ``profile`` for target -> client.
        listen: where to listen; port 0 picks a free port.
    """

    THREAD_NAME = "chatlab-netem-udp"
    DESCRIBED = "the datagram link"

    def __init__(
        self,
        target: Address,
        profile: DatagramProfile | None = None,
        *,
        upstream: DatagramProfile | None = None,
        downstream: DatagramProfile | None = None,
        listen: Address = ("127.0.0.1", 0),
    ) -> None:
        super().__init__(target, listen)
        profile = profile if profile is not None else DatagramProfile()
        self.upstream = upstream if upstream is not None else profile
        self.downstream = downstream if downstream is not None else profile
        self._flows: dict[Address, _Flow] = {}
        # the emulated wire: a heap of (arrival, order, socket, data, destination or None, path)
        self._wire: list[tuple[float, int, socket.socket, bytes, Address | None, DatagramPath]] = []
        self._order = itertools.count()  # ties on the heap keep sending order
        self._refused = 0
        self._stats = DatagramStats()
        self._family = socket.AF_INET

    # ----------------------------------------------------------- public API

    @property
    def stats(self) -> DatagramStats:
        """A :class:`DatagramStats` snapshot, a moment old at most."""
        return self._stats

    def _resolve_target(self) -> None:
        info = socket.getaddrinfo(self.target[0], self.target[1], type=socket.SOCK_DGRAM)[0]
        self._family, self.target = info[0], (str(info[4][0]), int(info[4][1]))

    def _open_listener(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.listen[0] else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind(self.listen)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until no datagram is on the emulated wire; True if that happened within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self._stats.in_flight and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self._stats.in_flight

    def __repr__(self) -> str:
        where = f"{self._address[0]}:{self._address[1]}" if self._address else "not started"
        return (f"<DatagramLink {where} -> {self.target[0]}:{self.target[1]}, up: {self.upstream.describe()};"
                f" down: {self.downstream.describe()}>")

    # ------------------------------------------------------ the loop thread

    def _run(self) -> None:
        assert self._selector is not None
        try:
            while not self._stopping:
                timeout = None if not self._wire else max(0.0, self._wire[0][0] - time.perf_counter())
                for key, _mask in self._selector.select(timeout):
                    if key.data is _WAKER:
                        self._drain_waker()
                    elif key.data is _LISTENER:
                        self._from_clients()
                    else:
                        self._from_target(key.data)
                self._deliver(time.perf_counter())
                self._publish()
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self._close_everything()

    def _from_clients(self) -> None:
        assert self._listener is not None
        while True:
            try:
                data, client = self._listener.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an ICMP error about an earlier reply to a client that has gone: not ours to report
            flow = self._flows.get(client[:2]) or self._open_flow(client[:2])
            if flow is not None:
                self._put(flow.up, data, flow.sock, None)

    def _open_flow(self, client: Address) -> _Flow | None:
        assert self._selector is not None
        try:
            sock = socket.socket(self._family, socket.SOCK_DGRAM)
        except OSError:
            return None  # out of descriptors: this client's datagrams are lost, like on a full NAT
        sock.setblocking(False)
        sock.connect(self.target)  # connected: the kernel filters replies from anyone else
        flow = _Flow(len(self._flows) + 1, client, sock, self.upstream, self.downstream)
        self._flows[client] = flow
        self._selector.register(sock, selectors.EVENT_READ, flow)
        return flow

    def _from_target(self, flow: _Flow) -> None:
        while True:
            try:
                data = flow.sock.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionRefusedError:
                self._refused += 1  # ICMP port unreachable for an earlier datagram: nothing listens at the target
                continue
            except OSError:
                return
            self._put(flow.down, data, self._listener, flow.client)  # type: ignore[arg-type]

    def _put(self, path: DatagramPath, data: bytes, sock: socket.socket, to: Address | None) -> None:
        for arrival in path.send(time.perf_counter(), len(data)):
            heapq.heappush(self._wire, (arrival, next(self._order), sock, data, to, path))

    def _deliver(self, now: float) -> None:
        while self._wire and self._wire[0][0] <= now:
            _due, _order, sock, data, to, path = heapq.heappop(self._wire)
            try:
                if to is None:
                    sock.send(data)
                else:
                    sock.sendto(data, to)
                path.delivered += 1
            except ConnectionRefusedError:
                self._refused += 1  # an earlier datagram's ICMP error, reported on this send
            except OSError:
                path.dropped += 1  # the kernel's buffer is full: lost, as a router would lose it

    def _publish(self) -> None:
        flows = list(self._flows.values())
        self._stats = DatagramStats(
            flows=len(flows),
            up=_total([f.up for f in flows]),
            down=_total([f.down for f in flows]),
            in_flight=len(self._wire),
            refused=self._refused,
        )

    def _close_everything(self) -> None:
        self._close_selector_sockets([f.sock for f in self._flows.values()])
        self._selector = None
        self._wire.clear()
        self._publish()


# --------------------------------------------------------------------- CLI


def _build_parser() -> argparse.ArgumentParser:
    from .netem import _host_port  # here: netem imports this module

    parser = argparse.ArgumentParser(
        prog="chatlab netem --udp",
        description=_("Forward UDP datagrams to TARGET through an emulated path that loses, duplicates, "
                      "reorders, delays (with jitter) and rate-limits them, as Linux's tc netem does. Send to the "
                      "address it prints; the replies come back from it. The same settings apply in both directions."),
    )
    parser.add_argument("--udp", action="store_true",
                        help=_("(accepted, so that chatlab netem --udp ... passes through)"))
    parser.add_argument("--target", required=True, type=_host_port, metavar="HOST:PORT",
                        help=_("where to forward datagrams"))
    parser.add_argument("--listen", default=("127.0.0.1", 0), type=lambda s: _host_port(s, allow_zero=True),
                        metavar="HOST:PORT", help=_("where to listen (default 127.0.0.1:0, any free port)"))
    parser.add_argument("--delay-ms", type=float, default=20.0, help=_("one-way delay in milliseconds (default 20)"))
    parser.add_argument("--jitter-ms", type=float, default=0.0,
                        help=_("each datagram's delay varies by up to this much either way"))
    parser.add_argument("--loss-pct", type=float, default=0.0, help=_("percentage of datagrams lost"))
    parser.add_argument("--duplicate-pct", type=float, default=0.0, help=_("percentage of datagrams delivered twice"))
    parser.add_argument("--reorder-pct", type=float, default=0.0,
                        help=_("percentage of datagrams that skip the delay (and overtake)"))
    parser.add_argument("--rate-mbit", type=float, default=0.0, help=_("rate in Mbit/s (default 0 = unlimited)"))
    parser.add_argument("--queue-kb", type=float, default=64.0,
                        help=_("queue in front of the rate limit, in KiB (default 64)"))
    parser.add_argument("--seed", type=int, default=None, help=_("seed for the random decisions (default: random)"))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Forward datagrams through a :class:`DatagramLink` until Ctrl-C.

    Args:
        argv: the arguments (``--target HOST:PORT`` and the profile's options); ``None`` means ``sys.argv[1:]``.

    Returns:
        The exit status: 0 after Ctrl-C, 1 if the link could not start or died, 2 for a bad setting.
    """
    translate_argparse()
    args = _build_parser().parse_args(argv)
    try:
        profile = DatagramProfile(
            delay=args.delay_ms / 1000, jitter=args.jitter_ms / 1000,
            loss=args.loss_pct / 100, duplicate=args.duplicate_pct / 100, reorder=args.reorder_pct / 100,
            rate=args.rate_mbit * 1e6 / 8 if args.rate_mbit > 0 else None,
            queue_bytes=max(1, int(args.queue_kb * 1024)), seed=args.seed,
        )
    except ValueError as exc:
        print(f"netem: {exc}", file=sys.stderr)
        return 2
    link = DatagramLink(args.target, profile, listen=args.listen)
    try:
        link.start()
        host, port = link.address
        print("netem: " + _("UDP on {host}:{port}, forwarding to {target}").format(
            host=host, port=port, target=f"{args.target[0]}:{args.target[1]}"), flush=True)
        print("netem: " + _("{profile} each way. Ctrl-C to stop.").format(profile=profile.describe()), flush=True)
        while link.running:
            time.sleep(0.2)  # short sleeps: on Windows a blocking join() would not see Ctrl-C
        print(f"netem: the link stopped unexpectedly: {link.error!r}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"netem: {exc}", file=sys.stderr)
        return 1
    finally:
        link.close()
    up, down = link.stats.up, link.stats.down
    print(f"netem: stopped. up: {up.sent} sent, {up.lost} lost, {up.duplicated} duplicated;"
          f" down: {down.sent} sent, {down.lost} lost, {down.duplicated} duplicated.", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
