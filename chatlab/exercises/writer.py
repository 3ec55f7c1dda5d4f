"""Exercise for notebook 07: a two-priority writer (chat before file chunks), checked on real sockets.

The student writes a class like chatlab's client writer, in miniature::

    class TwoPriorityWriter:
        def __init__(self, sock: socket.socket) -> None: ...
        def send_chat(self, frame: bytes) -> None: ...    # any thread: queue a chat frame
        def send_chunk(self, frame: bytes) -> None: ...   # any thread: queue a file chunk frame
        def run(self, stop: threading.Event) -> None: ... # the one writer thread, until stop is set

and checks it::

    from chatlab.exercises import check_priority_writer
    check_priority_writer(TwoPriorityWriter)

The rules: only the thread in ``run`` ever sends on the socket, each frame
whole (so no lock is needed around the socket); a chat frame that is waiting
goes out before any waiting chunk; chat frames keep their order among
themselves, and so do chunks; ``run`` returns soon after ``stop`` is set.

The checker runs the writer on a real TCP connection over loopback with
small kernel buffers and a receiver that reads slowly, so the writer spends
most of its time blocked in ``sendall()`` like a sender on a slow link.  It
decodes every byte that arrives as chatlab frames (so a frame cut by another
one fails as it would in the chat), and during a running transfer it counts
how many chunks arrive between a chat line being queued and the chat line
itself: about what the kernel already holds with a priority writer, the
whole queue with a first-in-first-out one.
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from ..core import protocol as p
from ..errors import ProtocolError
from ..i18n import N_, _
from ._report import Report, run_cases
from ._writer_probes import Batches, code_files, switching_often
from .recv import tcp_pair

__all__ = ["check_priority_writer", "PriorityWriter"]

CHUNK = 16 * 1024  # file data per chunk frame
KERNEL_BUFFER = 64 * 1024  # SO_SNDBUF on the writer's socket and SO_RCVBUF on the reader's
QUEUED_CHUNKS = 128  # chunks kept waiting during the running transfer: 2 MiB
# A chat line may see at most this many chunks arrive before it: what the kernel buffers already
# hold.  The reference waits behind 11-12 (measured on loopback, 64 KiB buffers); one FIFO queue
# about 128; a writer that joins 40 chunks into one sendall() about 40.
MAX_CHUNKS_AHEAD = 20
BURST = 5  # chat lines queued at once during a transfer: they leave together, no chunk between them
STOP_GRACE = 1.0  # seconds run() may take to return after stop is set
TIMEOUT = 5.0
SEND_AT_MOST = 8 * 1024  # the most one send() takes
IDLE = 0.3  # seconds with nothing to send
MAX_IDLE_LATENCY = 0.1  # seconds a chat frame queued to an idle writer may take to arrive (the reference: ~1 ms)
IDLE_PROBE_GAPS = (0.07, 0.11, 0.05, 0.13, 0.0)  # five frames, at irregular moments; the second slowest counts
MAX_IDLE_SLEEPS = 5  # time.sleep() calls the writer thread may make while idle (a sleep-poll loop makes ~30)
CHUNKS_ALONE_IN = 1.0  # seconds 40 small chunks may take with no chat at all (the reference: a few ms)
COARSE_CLOCK = 0.0156  # the resolution of time.time() on Windows, imposed while chat order is checked
CHATTY_THREADS, CHATTY_LINES = 4, 30  # threads calling send_chat at once, lines each
MAX_IDLE_CPU = 0.15  # share of one CPU the writer thread may use meanwhile (a spinning loop uses all of it)


class PriorityWriter(Protocol):
    def send_chat(self, frame: bytes) -> None: ...

    def send_chunk(self, frame: bytes) -> None: ...

    def run(self, stop: threading.Event) -> None: ...


WriterClass = Callable[[socket.socket], PriorityWriter]


def chat_frame(text: str) -> bytes:
    return p.encode(p.Say(text))


def chunk_frame(index: int, size: int = CHUNK) -> bytes:
    data = bytes([index % 251]) * size
    return p.encode(p.FileChunk(stream_id=1, offset=index * size, data=data))


class _Reader(threading.Thread):
    """Reads the far end slowly, decodes frames, and notes when each arrived and how many chunks came before."""

    def __init__(self, sock: socket.socket, pause: float = 0.0005, size: int = CHUNK) -> None:
        super().__init__(name="chatlab-checker-reader", daemon=True)
        self.sock = sock
        self.pause = pause
        self.size = size
        self.frames: list[tuple[float, int, p.Frame]] = []  # (arrival time, chunks before it, frame)
        self.chunks = 0
        self.error: str | None = None
        self.reading = threading.Event()  # cleared: the reader holds off (the kernel buffers fill up)
        self.reading.set()
        self._done = threading.Event()

    def run(self) -> None:
        decoder = p.FrameDecoder()
        try:
            while not self._done.is_set():
                if not self.reading.wait(0.05):
                    continue
                try:
                    data = self.sock.recv(self.size)
                except TimeoutError:
                    continue
                if not data:
                    return
                decoder.feed(data)
                for frame in decoder:
                    if frame.type == p.FrameType.FILE_CHUNK:
                        self.chunks += 1
                    self.frames.append((time.monotonic(), self.chunks, frame))
                if self.pause:
                    time.sleep(self.pause)  # a slow receiver: the writer's sendall() has to wait
        except ProtocolError as exc:
            self.error = str(exc)
        except OSError:
            pass

    def stop(self) -> None:
        self._done.set()
        self.join(TIMEOUT)

    def texts(self) -> list[str]:
        return [p.decode_message(f).text for _at, _chunks, f in self.frames if f.type == p.FrameType.SAY]  # type: ignore[union-attr]

    def offsets(self) -> list[int]:
        return [p.decode_message(f).offset for _at, _chunks, f in self.frames if f.type == p.FrameType.FILE_CHUNK]  # type: ignore[union-attr]


class _WatchedSocket:
    """The writer's socket, noting which threads send on it and the batches it is given (everything
    else is passed through)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.senders: set[int] = set()
        self.batches = Batches()
        self._lock = threading.Lock()  # only for the notes: two threads sending is reported, not crashed on

    def send(self, data: Any, *args: Any) -> int:
        # send() may always take fewer bytes than offered; here it does so every time it is
        # given more than 8 KiB, as a busy connection would, so code that ignores its result shows.
        self.senders.add(threading.get_ident())
        taken = self._sock.send(memoryview(data)[:SEND_AT_MOST], *args)
        with self._lock:
            self.batches.sent(data, taken)
        return taken

    def sendall(self, data: Any, *args: Any) -> None:
        self.senders.add(threading.get_ident())
        self._sock.sendall(data, *args)
        with self._lock:
            self.batches.sent(data)

    def sendmsg(self, buffers: Any, *args: Any) -> int:
        self.senders.add(threading.get_ident())
        buffers = list(buffers)
        taken = self._sock.sendmsg(buffers, *args)
        with self._lock:
            self.batches.sent(b"".join(bytes(memoryview(b).cast("B")) for b in buffers), taken)
        return taken

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _Rig:
    """A TCP connection with small buffers, the student's writer on one end (in its thread), a reader on the other."""

    def __init__(
        self, writer_class: WriterClass, stack: contextlib.ExitStack, pause: float = 0.0005, read_size: int = CHUNK
    ) -> None:
        self.sender, receiver = stack.enter_context(tcp_pair(TIMEOUT, rcvbuf=KERNEL_BUFFER))
        self.sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_BUFFER)
        self.watched = _WatchedSocket(self.sender)
        try:
            self.writer = writer_class(self.watched)  # type: ignore[arg-type]
        except NotImplementedError:
            raise AssertionError(_("not written yet: creating the writer still raises NotImplementedError (write the"
                                   " missing code, then run this again)")) from None
        self.stop = threading.Event()
        self.crash: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="chatlab-checker-writer", daemon=True)
        self.reader = _Reader(receiver, pause, read_size)
        self.reader.start()
        self.thread.start()
        stack.callback(self.close)

    def _run(self) -> None:
        try:
            self.writer.run(self.stop)
        except BaseException as exc:  # reported by the case, never printed by the thread
            self.crash = exc

    def call(self, method: str, frame: bytes) -> None:
        try:
            getattr(self.writer, method)(frame)
        except NotImplementedError:
            raise AssertionError(_("not written yet: {method}() still raises NotImplementedError (write the missing"
                                   " code, then run this again)").format(method=method)) from None

    def wait_for(self, count: int, timeout: float = TIMEOUT) -> None:
        """Wait until the reader has ``count`` frames, or the writer has died, or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        while len(self.reader.frames) < count and self.reader.error is None and time.monotonic() < deadline:
            if self.crash is not None or not self.thread.is_alive() or self.watched.senders - {self.thread.ident}:
                return
            time.sleep(0.005)

    def check_alive(self) -> None:
        others = self.watched.senders - {self.thread.ident}
        if others:
            raise AssertionError(
                _(
                    "frames were sent from another thread than the one in run() (the one that called send_chat or"
                    " send_chunk): two threads sending on one socket can cut each other's frames. Queue the frame;"
                    " only the writer thread sends"
                )
            )
        if self.crash is not None:
            if isinstance(self.crash, NotImplementedError):
                raise AssertionError(_("not written yet: run() still raises NotImplementedError (write the missing"
                                       " code, then run this again)"))
            raise AssertionError(
                _("run() raised {error}: {message}").format(error=type(self.crash).__name__, message=self.crash)
            )
        if self.reader.error is not None:
            raise AssertionError(
                _(
                    "the receiver could not decode the stream ({error}): a frame was cut. Either part"
                    " of it never went out (send() may take fewer bytes than it is given; sendall() loops until every"
                    " byte is sent), or another frame's bytes landed inside it (only one thread may send)"
                ).format(error=self.reader.error)
            )

    def close(self) -> None:
        self.stop.set()
        self.thread.join(STOP_GRACE)
        # Closing the sending side ends the reader (end of stream) and unblocks a writer stuck in sendall().
        with contextlib.suppress(OSError):
            self.sender.shutdown(socket.SHUT_RDWR)
        self.reader.stop()
        if self.thread.is_alive():
            # A writer waiting on its queue forever: wake it with one more frame; its send then fails and it ends.
            with contextlib.suppress(Exception):
                self.writer.send_chunk(b"")
            self.thread.join(STOP_GRACE)


@contextlib.contextmanager
def _patched_time(writer_class: Any, **replacements: Callable[..., Any]) -> Any:
    """Replace functions of the time module (and the writer's own ``from time import ...`` names) meanwhile."""
    import sys

    module = sys.modules.get(getattr(writer_class, "__module__", ""), None)
    namespace: dict[str, Any] = vars(module) if module is not None else {}
    originals = {name: getattr(time, name) for name in replacements}
    aliased = [(key, originals[name]) for key, value in list(namespace.items())
               for name in replacements if value is originals[name]]
    try:
        for name, fn in replacements.items():
            setattr(time, name, fn)
        for key, original in aliased:
            namespace[key] = replacements[next(n for n in replacements if originals[n] is original)]
        yield
    finally:
        for name, original in originals.items():
            setattr(time, name, original)
        for key, original in aliased:
            namespace[key] = original


def _coarse(clock: Callable[[], float]) -> Callable[[], float]:
    return lambda: (clock() // COARSE_CLOCK) * COARSE_CLOCK


def _thread_cpu(thread: threading.Thread) -> float | None:
    """CPU seconds ``thread`` has used so far, or None where the OS cannot say."""
    clock = getattr(time, "pthread_getcpuclockid", None)
    if clock is None or thread.ident is None:
        return None
    try:
        return time.clock_gettime(clock(thread.ident))
    except (OSError, OverflowError):
        return None


def _each_thread_in_order(got: list[str], lines: dict[int, list[str]]) -> None:
    """Fail unless each thread's chat lines arrived in the order that thread queued them."""
    for k in lines:
        mine = [text for text in got if f"/t{k}/" in text]
        first = next((i for i, (a, b) in enumerate(zip(mine, lines[k])) if a != b), 0)
        assert mine == lines[k], _(
            "{threads} threads queued chat lines at once, and the lines of one thread arrived out of order"
            " (sent {sent}..., got {got}...): a shared counter updated without a lock (`self.seq += 1` reads,"
            " adds and writes back, and another thread can run in between) hands out the same number twice"
            " or goes back, and the frames then sort by their bytes. Take the numbers from itertools.count()"
            " (one next() cannot be interrupted), or update the counter and queue the frame under one lock"
        ).format(threads=CHATTY_THREADS, sent=lines[k][first:first + 2], got=mine[first:first + 2])


def _scrambled(n: int) -> list[str]:
    """n distinct chat lines of equal length whose byte order is not their sending order."""
    return [f"line {(i * 37) % 101:03d}/{i:03d}" for i in range(n)]


def check_priority_writer(writer_class: WriterClass, *, only: str | None = None, show: bool = True) -> Report:
    """Run the student's two-priority writer on a slow loopback connection; print one line per case.

    ``writer_class(sock)`` must return an object with ``send_chat(frame)``,
    ``send_chunk(frame)`` and ``run(stop)``.  ``only="order"`` runs just the
    cases whose name contains that text.  Returns the :class:`Report`.
    """

    def one_chat_line() -> str:
        with contextlib.ExitStack() as stack:
            rig = _Rig(writer_class, stack)
            rig.call("send_chat", chat_frame("hello"))
            rig.wait_for(1)
            rig.check_alive()
            assert rig.reader.texts() == ["hello"], _(
                "the receiver got {got!r}, not ['hello']: run() must take each queued frame and send all of its bytes"
            ).format(got=rig.reader.texts())
        return _("arrived whole")

    def chat_keeps_its_order() -> str:
        lines = _scrambled(40)
        with contextlib.ExitStack() as stack:
            rig = _Rig(writer_class, stack)
            # The clocks tick as coarsely as Windows' time.time(): a timestamp is no tie-breaker.
            with _patched_time(writer_class, time=_coarse(time.time), monotonic=_coarse(time.monotonic),
                               perf_counter=_coarse(time.perf_counter)):
                for line in lines:
                    rig.call("send_chat", chat_frame(line))
            rig.wait_for(len(lines))
            rig.check_alive()
            got = rig.reader.texts()
        assert len(got) == len(lines), _("{got} of {n} chat lines arrived").format(got=len(got), n=len(lines))
        assert got == lines, _(
            "chat lines arrived out of order (sent {sent}..., got {got}...): frames of the same"
            " priority must leave in the order they were queued (a priority queue that compares the frames"
            " themselves sorts them by their bytes; so does one that breaks ties with a timestamp, since frames"
            " queued within the clock's resolution, 15 ms on Windows, get the same one: use a counter,"
            " itertools.count())"
        ).format(sent=lines[:3], got=got[:3])
        return _("{n} lines in order").format(n=len(lines))

    def chunks_keep_their_order() -> str:
        with contextlib.ExitStack() as stack:
            rig = _Rig(writer_class, stack, pause=0)
            started = time.monotonic()
            for i in range(40):
                rig.call("send_chunk", chunk_frame(i, 1024))
            rig.wait_for(40)
            took = time.monotonic() - started
            rig.check_alive()
            got = rig.reader.offsets()
        expected = [i * 1024 for i in range(40)]
        assert len(got) == len(expected), _("{got} of {n} chunks arrived").format(got=len(got), n=len(expected))
        assert got == expected, _("file chunks arrived out of order: chunks must leave in the order they were queued")
        assert took <= CHUNKS_ALONE_IN, _(
            "40 small chunks, with no chat at all, took {seconds:.1f} s to arrive: your writer waits before each"
            " chunk (on the chat queue with a timeout, or a sleep). Wait on one thing that any new frame wakes at"
            " once, and take a chunk as soon as no chat frame is waiting"
        ).format(seconds=took)
        return _("{n} chunks in order").format(n=len(got))

    def frames_arrive_whole() -> str:
        # Big chat frames from two threads while chunks flow, to a reader that takes 4 KiB at a time: the
        # writer is blocked in the middle of a frame most of the time, which is when a second sender would
        # slip its bytes in between, or a send() would take only part of a frame.
        big_lines = {name: [f"{name}{i:02d}" + name * 50_000 for i in range(10)] for name in "xy"}
        with contextlib.ExitStack() as stack:
            rig = _Rig(writer_class, stack, pause=0.0002, read_size=4096)
            for i in range(32):
                rig.call("send_chunk", chunk_frame(i))

            def chatter(name: str) -> None:
                for line in big_lines[name]:
                    with contextlib.suppress(AssertionError, OSError):
                        rig.call("send_chat", chat_frame(line))

            threads = [threading.Thread(target=chatter, args=(name,), daemon=True) for name in "xy"]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(TIMEOUT if not rig.watched.senders - {rig.thread.ident} else 0.5)
            rig.wait_for(32 + 20)
            rig.check_alive()
            got = rig.reader.texts()
            offsets = rig.reader.offsets()
        sent = big_lines["x"] + big_lines["y"]
        assert sorted(got) == sorted(sent), _(
            "{got} of {n} big chat lines arrived intact: every frame queued must be sent, whole"
        ).format(got=len(got), n=len(sent))
        assert offsets == [i * CHUNK for i in range(32)], (
            _("{got} of 32 chunks arrived intact").format(got=len(offsets)))
        return _("{n} chat frames of 50 kB from two threads and 32 chunks, all intact").format(n=len(got))

    def chat_overtakes_a_running_transfer() -> str:
        with contextlib.ExitStack() as stack:
            rig = _Rig(writer_class, stack, pause=0.004)  # about 4 MB/s: 2 MiB of chunks take half a second
            queued = 0
            ahead: list[int] = []  # per chat line: chunks that arrived between its send_chat and itself
            delays: list[float] = []
            for i in range(QUEUED_CHUNKS):  # the big window of notebook 07: the file released at once
                rig.call("send_chunk", chunk_frame(i))
                queued += 1
            time.sleep(0.1)  # the writer is now blocked in sendall(): kernel buffers full, the rest queued
            for n in range(5):
                before = rig.reader.chunks
                sent_at = time.monotonic()
                text = f"ping {n}" + (" " + "x" * (2 * CHUNK) if n % 2 else "")  # long and short lines
                rig.call("send_chat", chat_frame(text))
                deadline = time.monotonic() + TIMEOUT * 2
                arrived = None
                while arrived is None and time.monotonic() < deadline:
                    rig.check_alive()
                    for at, chunks_before, frame in list(rig.reader.frames):
                        if frame.type == p.FrameType.SAY and p.decode_message(frame).text == text:  # type: ignore[union-attr]
                            arrived = (at, chunks_before)
                    time.sleep(0.002)
                assert arrived is not None, _("chat line {n} did not arrive within {seconds:g} s").format(
                    n=n, seconds=TIMEOUT * 2
                )
                ahead.append(arrived[1] - before)
                delays.append(arrived[0] - sent_at)
                for _refill in range(ahead[-1]):  # keep the transfer running: refill what was delivered
                    rig.call("send_chunk", chunk_frame(queued))
                    queued += 1
            rig.check_alive()
        typical = statistics.median(ahead)
        detail = _("a chat line waited behind {chunks:.0f} chunks (median; {queued} were queued), {ms:.0f} ms").format(
            chunks=typical, queued=QUEUED_CHUNKS, ms=statistics.median(delays) * 1000
        )
        batch = rig.watched.batches.most_chunks
        assert batch <= 1, _(
            "{detail}: your writer gave {n} chunks to one send call (one sendall(), send() or sendmsg()). A"
            " chat line queued while that call runs waits behind the whole batch: those chunks are no longer"
            " waiting in a queue, where it could overtake them. Send one chunk per call, and look at the chat"
            " queue before taking each chunk"
        ).format(detail=detail, n=batch)
        assert typical <= MAX_CHUNKS_AHEAD, _(
            "{detail}, at most {limit} allowed (what the kernel buffers hold): it waited for the chunks"
            " queued before it. A chat frame that is waiting must go before every chunk that is waiting: look"
            " at the chat queue before taking each chunk (a writer that joins many chunks into one sendall()"
            " makes chat wait behind the whole batch)"
        ).format(detail=detail, limit=MAX_CHUNKS_AHEAD)
        long_ahead, short_ahead = ahead[1::2], ahead[0::2]
        assert not (min(long_ahead) > MAX_CHUNKS_AHEAD >= statistics.median(short_ahead)), _(
            "short chat lines overtook the transfer but long ones ({size} KiB) waited behind {chunks} chunks:"
            " the priority must come from send_chat versus send_chunk, not from the frame's size"
        ).format(size=2 * CHUNK // 1024, chunks=min(long_ahead))
        return detail

    def chat_burst_goes_together() -> str:
        with contextlib.ExitStack() as stack:
            rig = _Rig(writer_class, stack, pause=0.004)
            for i in range(QUEUED_CHUNKS):
                rig.call("send_chunk", chunk_frame(i))
            time.sleep(0.1)  # the writer is blocked in sendall(): kernel buffers full, the rest queued
            texts = [f"burst {n}" for n in range(BURST)]
            for text in texts:
                rig.call("send_chat", chat_frame(text))
            deadline = time.monotonic() + TIMEOUT * 2
            arrived: dict[str, int] = {}
            while len(arrived) < BURST and time.monotonic() < deadline:
                rig.check_alive()
                for _at, chunks_before, frame in list(rig.reader.frames):
                    if frame.type == p.FrameType.SAY:
                        text = p.decode_message(frame).text  # type: ignore[union-attr]
                        if text in texts:
                            arrived.setdefault(text, chunks_before)
                time.sleep(0.002)
            rig.check_alive()
        assert len(arrived) == BURST, _("{got} of {n} chat lines arrived within {seconds:g} s").format(
            got=len(arrived), n=BURST, seconds=TIMEOUT * 2
        )
        between = max(arrived.values()) - min(arrived.values())
        assert between <= 1, _(
            "{n} chat lines queued at once during a transfer arrived with {between} chunks between them: your"
            " writer takes turns (a chat frame, then a chunk, ...). Priority means every waiting chat frame"
            " goes before any waiting chunk, not one of each in turn"
        ).format(n=BURST, between=between)
        return _("{n} chat lines together, {between} chunk(s) between them").format(n=BURST, between=between)

    def chat_from_many_threads() -> str:
        files = code_files(writer_class)
        lines = {k: [f"{(i * 37 + k * 11) % 101:03d}/t{k}/{i:03d}" for i in range(CHATTY_LINES)]
                 for k in range(CHATTY_THREADS)}
        with contextlib.ExitStack() as stack:
            rig = _Rig(writer_class, stack, pause=0.004)
            for i in range(QUEUED_CHUNKS // 4):
                rig.call("send_chunk", chunk_frame(i))
            time.sleep(0.1)  # the writer is blocked in sendall(): kernel buffers full
            rig.reader.reading.clear()  # and stays blocked: every chat line waits in the writer's queue
            go = threading.Barrier(CHATTY_THREADS)

            def chatter(k: int) -> None:
                with contextlib.suppress(threading.BrokenBarrierError):
                    go.wait(TIMEOUT)
                with switching_often(files, seed=k), contextlib.suppress(AssertionError, OSError):
                    for line in lines[k]:
                        rig.call("send_chat", chat_frame(line))

            threads = [threading.Thread(target=chatter, args=(k,), daemon=True) for k in range(CHATTY_THREADS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(TIMEOUT * 2)
            rig.reader.reading.set()
            total = CHATTY_THREADS * CHATTY_LINES
            deadline = time.monotonic() + TIMEOUT * 2
            while len(rig.reader.texts()) < total and time.monotonic() < deadline:
                rig.check_alive()
                time.sleep(0.01)
            rig.check_alive()
            got = rig.reader.texts()
        assert sorted(got) == sorted(line for k in lines for line in lines[k]), _(
            "{got} of {n} chat lines queued from {threads} threads at once arrived (each once): every frame"
            " queued must be sent once"
        ).format(got=len(set(got)), n=CHATTY_THREADS * CHATTY_LINES, threads=CHATTY_THREADS)
        _each_thread_in_order(got, lines)
        return _("{n} chat lines from {threads} threads, each thread's in order").format(
            n=len(got), threads=CHATTY_THREADS)

    def waits_while_idle() -> str:
        with contextlib.ExitStack() as stack:
            rig = _Rig(writer_class, stack)
            rig.call("send_chat", chat_frame("before the pause"))
            rig.wait_for(1)
            rig.check_alive()
            time.sleep(0.05)
            original_sleep, writer_thread, sleeps = time.sleep, rig.thread.ident, [0]

            def counting_sleep(seconds: float) -> None:
                if threading.get_ident() == writer_thread:
                    sleeps[0] += 1
                original_sleep(seconds)

            cpu_before = _thread_cpu(rig.thread)
            with _patched_time(writer_class, sleep=counting_sleep):
                original_sleep(IDLE)  # nothing to send
            cpu_after = _thread_cpu(rig.thread)
            rig.check_alive()
            assert rig.thread.is_alive(), _(
                "run() returned while the queues were empty, before stop was set: a writer waits for more frames"
                " (with a timeout, to look at stop) until it is told to stop"
            )
            busy = None if cpu_before is None or cpu_after is None else (cpu_after - cpu_before) / IDLE
            assert busy is None or busy < MAX_IDLE_CPU, _(
                "with nothing to send, the writer thread kept the CPU {percent:.0%} busy: it spins in a loop"
                " that polls the queues. Block until a frame comes (queue.get(timeout=...), or a Condition's"
                " wait(timeout)) instead of checking again at once"
            ).format(percent=busy)
            assert sleeps[0] <= MAX_IDLE_SLEEPS, _(
                "with nothing to send, the writer thread called time.sleep() {n} times in {seconds:g} s: it polls"
                " the queues, and a frame queued meanwhile waits for the sleep to end. Block until a frame comes"
                " (queue.get(timeout=...), or a Condition's wait(timeout)) instead of sleeping"
            ).format(n=sleeps[0], seconds=IDLE)
            latencies = []
            for k, gap in enumerate(IDLE_PROBE_GAPS):  # frames queued at different moments of the writer's wait
                sent_at = time.monotonic()
                rig.call("send_chat", chat_frame(f"after the pause {k}"))
                rig.wait_for(2 + k)
                rig.check_alive()
                if len(rig.reader.frames) >= 2 + k:
                    latencies.append(rig.reader.frames[-1][0] - sent_at)
                time.sleep(gap)
            after = [f"after the pause {k}" for k in range(len(IDLE_PROBE_GAPS))]
            assert rig.reader.texts() == ["before the pause"] + after, _(
                "after a pause with nothing to send, a new chat frame did not arrive ({got!r})"
            ).format(got=rig.reader.texts()[1:])
            slow = sorted(latencies)[-2] if len(latencies) >= 2 else 0.0
            assert slow <= MAX_IDLE_LATENCY, _(
                "chat frames queued while the writer was idle took up to {ms:.0f} ms to arrive: the writer was"
                " waiting on something that does not wake up for them (the chunk queue, or a sleep). Wait on one"
                " thing that any new frame wakes at once: one PriorityQueue, or a Condition notified by send_chat"
                " and send_chunk"
            ).format(ms=max(latencies) * 1000)
        return _("idle for {seconds:g} s, CPU {percent}").format(
            seconds=IDLE, percent=_("not measured") if busy is None else f"{busy:.0%}"
        )

    def returns_after_stop() -> str:
        with contextlib.ExitStack() as stack:
            rig = _Rig(writer_class, stack)
            rig.call("send_chat", chat_frame("last words"))
            rig.wait_for(1)
            time.sleep(0.05)  # the queues are empty: the writer is waiting for work
            started = time.monotonic()
            rig.stop.set()
            rig.thread.join(STOP_GRACE)
            took = time.monotonic() - started
            assert not rig.thread.is_alive(), _(
                "run() still running {seconds:g} s after stop was set: wait for frames with a timeout"
                " and check stop in between"
            ).format(seconds=STOP_GRACE)
            rig.check_alive()
        return _("returned after {ms:.0f} ms").format(ms=took * 1000)

    cases: list[tuple[str, Callable[[], Any]]] = [
        (N_("one chat frame"), one_chat_line),
        (N_("chat lines keep their order"), chat_keeps_its_order),
        (N_("file chunks keep their order"), chunks_keep_their_order),
        (N_("frames arrive whole (chat from two threads during a transfer)"), frames_arrive_whole),
        (N_("chat overtakes a running transfer"), chat_overtakes_a_running_transfer),
        (N_("a burst of chat lines goes out together, before the waiting chunks"), chat_burst_goes_together),
        (N_("chat lines from several threads at once keep each thread's order"), chat_from_many_threads),
        (N_("waits for more frames, without spinning, while there is nothing to send"), waits_while_idle),
        (N_("returns soon after stop is set"), returns_after_stop),
    ]
    if only is not None:  # the English name, or the name in the current language
        cases = [(name, case) for name, case in cases if only in name or only in _(name)]
    return run_cases("check_priority_writer", [(_(name), case) for name, case in cases], show=show)
