"""check_priority_writer (notebook 07): the reference passes, classic wrong answers FAIL with a hint.

Each wrong answer is one a student is likely to write for the two-priority
writer; the test asserts which case fails and that the hint names the concept.
The checker runs on real loopback sockets, so these tests take a few seconds.
"""

from __future__ import annotations

import collections
import itertools
import queue
import socket
import threading
import time

import pytest

from chatlab.exercises import check_priority_writer
from solutions.priority_writer import TwoPriorityWriter


class Unsolved:
    """The student edition's stub."""

    def __init__(self, sock: socket.socket) -> None:
        raise NotImplementedError()


class OneFifoQueue(TwoPriorityWriter):
    """Everything in one first-in-first-out queue: chat waits behind every chunk queued before it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.frames: queue.Queue[bytes] = queue.Queue()

    def send_chat(self, frame: bytes) -> None:
        self.frames.put(frame)

    def send_chunk(self, frame: bytes) -> None:
        self.frames.put(frame)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                frame = self.frames.get(timeout=0.05)
            except queue.Empty:
                continue
            self.sock.sendall(frame)


class PriorityWithoutSequence(TwoPriorityWriter):
    """(priority, frame) in a PriorityQueue: equal priorities are ordered by the frames' bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.frames: queue.PriorityQueue[tuple[int, bytes]] = queue.PriorityQueue()

    def send_chat(self, frame: bytes) -> None:
        self.frames.put((0, frame))

    def send_chunk(self, frame: bytes) -> None:
        self.frames.put((1, frame))

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                _, frame = self.frames.get(timeout=0.05)
            except queue.Empty:
                continue
            self.sock.sendall(frame)


class ChatSentByTheCaller(TwoPriorityWriter):
    """Chat "first" by sending it at once from the calling thread: two threads on one socket."""

    def send_chat(self, frame: bytes) -> None:
        self.sock.sendall(frame)


class SendInsteadOfSendall(TwoPriorityWriter):
    """send() may take only part of a frame; the rest is lost."""

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                _, _, frame = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            self.sock.send(frame)


class WaitsWithoutTimeout(TwoPriorityWriter):
    """queue.get() without a timeout: stop is never looked at while the queues are empty."""

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            _, _, frame = self._queue.get()
            self.sock.sendall(frame)


class DrainsChunksInBatches(TwoPriorityWriter):
    """Two queues, but every waiting chunk is sent before chat is looked at again."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.chat: queue.Queue[bytes] = queue.Queue()
        self.chunks: queue.Queue[bytes] = queue.Queue()

    def send_chat(self, frame: bytes) -> None:
        self.chat.put(frame)

    def send_chunk(self, frame: bytes) -> None:
        self.chunks.put(frame)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            while not self.chat.empty():
                self.sock.sendall(self.chat.get())
            while not self.chunks.empty():
                self.sock.sendall(self.chunks.get())
            time.sleep(0.01)


class ChatAsAStack(DrainsChunksInBatches):
    """The newest chat line first (a LIFO queue): chat lines come out reversed."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self.chat = queue.LifoQueue()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if not self.chat.empty():
                self.sock.sendall(self.chat.get())
                continue
            try:
                self.sock.sendall(self.chunks.get(timeout=0.01))
            except queue.Empty:
                pass


class JoinsChunksInBatches:
    """Chat first, but up to 40 waiting chunks joined into one sendall(): chat waits behind the batch."""

    BATCH = 40

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.chat: queue.Queue[bytes] = queue.Queue()
        self.chunks: queue.Queue[bytes] = queue.Queue()

    def send_chat(self, frame: bytes) -> None:
        self.chat.put(frame)

    def send_chunk(self, frame: bytes) -> None:
        self.chunks.put(frame)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            if not self.chat.empty():
                self.sock.sendall(self.chat.get())
                continue
            try:
                batch = [self.chunks.get(timeout=0.05)]
            except queue.Empty:
                continue
            while len(batch) < self.BATCH:
                try:
                    batch.append(self.chunks.get_nowait())
                except queue.Empty:
                    break
            self.sock.sendall(b"".join(batch))


class RoundRobin(JoinsChunksInBatches):
    """Takes turns: one chat frame, one chunk, one chat frame..."""

    def run(self, stop: threading.Event) -> None:
        turn = 0
        while not stop.is_set():
            queues = (self.chat, self.chunks)
            for k in range(2):
                chosen = queues[(turn + k) % 2]
                if not chosen.empty():
                    self.sock.sendall(chosen.get())
                    turn = (turn + k + 1) % 2
                    break
            else:
                time.sleep(0.005)


class Spins(TwoPriorityWriter):
    """Polls the queue with get_nowait() in a tight loop: a whole CPU for nothing."""

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                _, _, frame = self._queue.get_nowait()
            except queue.Empty:
                continue
            self.sock.sendall(frame)


class ReturnsWhenIdle(TwoPriorityWriter):
    """Takes an empty queue for the end of the work."""

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                _, _, frame = self._queue.get(timeout=0.1)
            except queue.Empty:
                return
            self.sock.sendall(frame)


class ChatAtTheFront(TwoPriorityWriter):
    """One deque, chat put at the front with appendleft(): the newest chat line goes first."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.frames: collections.deque[bytes] = collections.deque()
        self.ready = threading.Condition()

    def send_chat(self, frame: bytes) -> None:
        with self.ready:
            self.frames.appendleft(frame)
            self.ready.notify()

    def send_chunk(self, frame: bytes) -> None:
        with self.ready:
            self.frames.append(frame)
            self.ready.notify()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self.ready:
                if not self.frames:
                    self.ready.wait(0.05)
                    continue
                frame = self.frames.popleft()
            self.sock.sendall(frame)


class BlocksOnTheChunkQueue(JoinsChunksInBatches):
    """Chat first, but while idle it waits half a second on the chunk queue: chat waits with it."""

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                frame = self.chat.get_nowait()
            except queue.Empty:
                try:
                    frame = self.chunks.get(timeout=0.5)
                except queue.Empty:
                    continue
            self.sock.sendall(frame)


class WriterOnACondition:
    """Correct, written differently: two deques and a Condition instead of a PriorityQueue."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.chat: collections.deque[bytes] = collections.deque()
        self.chunks: collections.deque[bytes] = collections.deque()
        self.ready = threading.Condition()

    def send_chat(self, frame: bytes) -> None:
        with self.ready:
            self.chat.append(frame)
            self.ready.notify()

    def send_chunk(self, frame: bytes) -> None:
        with self.ready:
            self.chunks.append(frame)
            self.ready.notify()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            with self.ready:
                self.ready.wait_for(lambda: self.chat or self.chunks or stop.is_set(), timeout=0.05)
                if self.chat:
                    frame = self.chat.popleft()
                elif self.chunks:
                    frame = self.chunks.popleft()
                else:
                    continue
            self.sock.sendall(frame)


class WriterWithSendLoop(TwoPriorityWriter):
    """Correct, written differently: send() in a loop on its return value, a memoryview to avoid copies."""

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                _, _, frame = self._queue.get(timeout=0.05)
            except queue.Empty:
                continue
            view = memoryview(frame)
            while view:
                view = view[self.sock.send(view):]


# From a reviewer's attempts to fool the checker.
class _FoolTwo:
    def __init__(self, sock):
        self.sock = sock
        self.chat = queue.Queue()
        self.chunks = queue.Queue()

    def send_chat(self, frame):
        self.chat.put(frame)

    def send_chunk(self, frame):
        self.chunks.put(frame)


class FoolBlocksOnTheChatQueue(_FoolTwo):
    """BUG: waits 50 ms on the chat queue before every chunk: a transfer with no chat crawls at 20 chunks/s."""

    def run(self, stop):
        while not stop.is_set():
            try:
                frame = self.chat.get(timeout=0.05)
            except queue.Empty:
                try:
                    frame = self.chunks.get_nowait()
                except queue.Empty:
                    continue
            self.sock.sendall(frame)


class FoolSleepPoll(_FoolTwo):
    """BUG (poll loop): sleeps 10 ms whenever both queues are empty instead of blocking on them."""

    def run(self, stop):
        while not stop.is_set():
            try:
                frame = self.chat.get_nowait()
            except queue.Empty:
                try:
                    frame = self.chunks.get_nowait()
                except queue.Empty:
                    time.sleep(0.01)
                    continue
            self.sock.sendall(frame)


class FoolTimestampOrder:
    """BUG: (priority, time.time(), frame): two frames queued within the clock's resolution
    (15 ms on Windows) are ordered by their bytes."""

    def __init__(self, sock):
        self.sock = sock
        self.q = queue.PriorityQueue()

    def send_chat(self, frame):
        self.q.put((0, time.time(), frame))

    def send_chunk(self, frame):
        self.q.put((1, time.time(), frame))

    def run(self, stop):
        while not stop.is_set():
            try:
                _p, _t, frame = self.q.get(timeout=0.05)
            except queue.Empty:
                continue
            self.sock.sendall(frame)


class FoolShortestFirst:
    """BUG: the priority is the frame's size (chat lines are short...): a long chat line waits behind chunks,
    and send_chat/send_chunk mean nothing."""

    def __init__(self, sock):
        self.sock = sock
        self.q = queue.PriorityQueue()
        self.n = itertools.count()

    def send_chat(self, frame):
        self.q.put((len(frame), next(self.n), frame))

    send_chunk = send_chat

    def run(self, stop):
        while not stop.is_set():
            try:
                _p, _t, frame = self.q.get(timeout=0.05)
            except queue.Empty:
                continue
            self.sock.sendall(frame)


class FoolUnsafeCounter:
    """BUG: a plain int sequence number bumped from several threads without a lock."""

    def __init__(self, sock):
        self.sock = sock
        self.q = queue.PriorityQueue()
        self.seq = 0

    def _put(self, prio, frame):
        self.seq += 1
        self.q.put((prio, self.seq, frame))

    def send_chat(self, frame):
        self._put(0, frame)

    def send_chunk(self, frame):
        self._put(1, frame)

    def run(self, stop):
        while not stop.is_set():
            try:
                _p, _t, frame = self.q.get(timeout=0.05)
            except queue.Empty:
                continue
            self.sock.sendall(frame)


class FoolSmallBatches(_FoolTwo):
    """BUG: joins up to 4 waiting chunks into one sendall(): a chat line may wait behind 3 chunks queued after it.

    The rule is 'a waiting chat frame before any waiting chunk'."""
    BATCH = 4

    def run(self, stop):
        while not stop.is_set():
            try:
                self.sock.sendall(self.chat.get_nowait())
                continue
            except queue.Empty:
                pass
            try:
                batch = [self.chunks.get(timeout=0.005)]
            except queue.Empty:
                continue
            while len(batch) < self.BATCH:
                try:
                    batch.append(self.chunks.get_nowait())
                except queue.Empty:
                    break
            self.sock.sendall(b"".join(batch))


class SendsBatchesWithSendmsg(_FoolTwo):
    """BUG: gathers up to 4 waiting chunks into one sendmsg() (no copy, but a batch all the same)."""

    def run(self, stop):
        while not stop.is_set():
            try:
                self.sock.sendall(self.chat.get_nowait())
                continue
            except queue.Empty:
                pass
            try:
                batch = [self.chunks.get(timeout=0.005)]
            except queue.Empty:
                continue
            while len(batch) < 4 and not self.chunks.empty():
                batch.append(self.chunks.get_nowait())
            views = [memoryview(frame) for frame in batch]
            while views:
                sent = self.sock.sendmsg(views)
                while views and sent >= len(views[0]):
                    sent -= len(views.pop(0))
                if views:
                    views[0] = views[0][sent:]


class ChatBatchedTogether(_FoolTwo):
    """Correct, different: every waiting chat frame joined into one sendall(), then one chunk at a time."""

    def run(self, stop):
        while not stop.is_set():
            lines = []
            while not self.chat.empty():
                lines.append(self.chat.get_nowait())
            if lines:
                self.sock.sendall(b"".join(lines))
                continue
            try:
                self.sock.sendall(self.chunks.get(timeout=0.002))
            except queue.Empty:
                pass


class LockedCounter:
    """Correct, different: a plain int sequence number, bumped and queued under a lock."""

    def __init__(self, sock):
        self.sock = sock
        self.q = queue.PriorityQueue()
        self.seq = 0
        self.lock = threading.Lock()

    def _put(self, prio, frame):
        with self.lock:
            self.seq += 1
            self.q.put((prio, self.seq, frame))

    def send_chat(self, frame):
        self._put(0, frame)

    def send_chunk(self, frame):
        self._put(1, frame)

    def run(self, stop):
        while not stop.is_set():
            try:
                _p, _n, frame = self.q.get(timeout=0.05)
            except queue.Empty:
                continue
            self.sock.sendall(frame)


class FoolSemaphore:
    """Correct, different: two deques and a Semaphore counting the frames waiting."""

    def __init__(self, sock):
        self.sock = sock
        self.chat = collections.deque()
        self.chunks = collections.deque()
        self.items = threading.Semaphore(0)

    def send_chat(self, frame):
        self.chat.append(frame)
        self.items.release()

    def send_chunk(self, frame):
        self.chunks.append(frame)
        self.items.release()

    def run(self, stop):
        while not stop.is_set():
            if not self.items.acquire(timeout=0.05):
                continue
            frame = self.chat.popleft() if self.chat else self.chunks.popleft()
            view = memoryview(frame)
            while view:
                view = view[self.sock.sendmsg([view]):]


# (wrong answer, the case that must fail, words its hint must contain)
WRONG_ANSWERS: list[tuple[type, str, str]] = [
    (Unsolved, "one chat frame", "not written yet"),
    (OneFifoQueue, "chat overtakes a running transfer", "must go before every chunk"),
    (PriorityWithoutSequence, "chat lines keep their order", "order they were queued"),
    (ChatSentByTheCaller, "frames arrive whole", "only the writer thread sends"),
    (SendInsteadOfSendall, "frames arrive whole", "sendall() loops"),
    (WaitsWithoutTimeout, "returns soon after stop is set", "with a timeout"),
    (DrainsChunksInBatches, "chat overtakes a running transfer", "before taking each chunk"),
    (ChatAsAStack, "chat lines keep their order", "order they were queued"),
    (JoinsChunksInBatches, "chat overtakes a running transfer", "chunks to one send call"),
    (RoundRobin, "a burst of chat lines", "takes turns"),
    (Spins, "waits for more frames", "spins"),
    (ReturnsWhenIdle, "waits for more frames", "before stop was set"),
    (ChatAtTheFront, "chat lines keep their order", "order they were queued"),
    (BlocksOnTheChunkQueue, "waits for more frames", "does not wake up for them"),
    (FoolBlocksOnTheChatQueue, "file chunks keep their order", "waits before each chunk"),
    (FoolTimestampOrder, "chat lines keep their order", "timestamp"),
    (FoolShortestFirst, "chat overtakes a running transfer", "not from the frame's size"),
    (FoolSleepPoll, "waits for more frames", "time.sleep()"),
    (FoolSmallBatches, "chat overtakes a running transfer", "gave 4 chunks to one send call"),
    (FoolUnsafeCounter, "chat lines from several threads", "a shared counter updated without a lock"),
    (SendsBatchesWithSendmsg, "chat overtakes a running transfer", "chunks to one send call"),
]


@pytest.mark.parametrize("writer", [WriterOnACondition, WriterWithSendLoop, FoolSemaphore, ChatBatchedTogether,
                                    LockedCounter])
def test_a_correct_writer_written_differently_passes(writer: type) -> None:
    report = check_priority_writer(writer, show=False)
    assert report.all_passed, report.summary()


def test_the_reference_passes() -> None:
    report = check_priority_writer(TwoPriorityWriter, show=False)
    assert report, report.summary()


@pytest.mark.parametrize(("writer", "case", "hint"), WRONG_ANSWERS, ids=[w.__name__ for w, _, _ in WRONG_ANSWERS])
def test_a_classic_wrong_answer_fails_with_a_hint(writer: type, case: str, hint: str) -> None:
    report = check_priority_writer(writer, only=case, show=False)
    assert report.results, f"no case is called {case!r}"
    failed = {r.name: r.detail for r in report.results if not r.passed}
    matching = [name for name in failed if name.startswith(case)]
    assert matching, f"case {case!r} did not fail: {report.summary()}"
    assert hint in failed[matching[0]], failed[matching[0]]


def test_an_unsolved_stub_prints_fail_lines_leaves_no_thread_and_never_raises(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class StubbedRun(TwoPriorityWriter):
        def run(self, stop: threading.Event) -> None:
            raise NotImplementedError()

    crashes: list[object] = []
    old_hook = threading.excepthook
    threading.excepthook = crashes.append
    try:
        before = threading.active_count()
        stubs: list[type] = [Unsolved, StubbedRun, WaitsWithoutTimeout]
        for stub in stubs:
            report = check_priority_writer(stub)
            assert not report
        out = capsys.readouterr().out
        assert "[FAIL]" in out and "not written yet" in out
        time.sleep(0.2)
        assert threading.active_count() <= before  # every reader and writer thread ended
    finally:
        threading.excepthook = old_hook
    assert crashes == []  # no thread died with a traceback
