"""Packet captures of real loopback sessions, recorded and read back.

The package ships captures in ``chatlab/data/captures/`` (classic pcap files that
Wireshark, tcpdump and tshark open; package data, so an installed wheel has them too), so a
student without capture rights can still look at real packets:

========================  ===================================================
``chat.pcap``             two clients join, chat, join a room, whisper; one
                          frame is sent in two writes (split across two TCP
                          segments), two frames in one write (glued)
``transfer.pcap``         a small file sent with FILE_OFFER ... FILE_DONE
``fin_rst.pcap``          a connection closed with a FIN, another with a RST
                          (``SO_LINGER`` 0)
``time_wait.pcap``        the server closes first (the active close) and its
                          side of the connection goes to TIME_WAIT
========================  ===================================================

Reading them needs scapy (``pip install scapy``, in the ``notebooks`` and
``test`` extras)::

    from chatlab import captures
    captures.show("fin_rst.pcap")          # one line per packet: flags, seq/ack, length, chatlab frames

Recording needs ``dumpcap`` (it comes with Wireshark / tshark) and the right
to capture on the loopback interface (root, or the ``wireshark`` group on
Linux)::

    python -m chatlab.captures record --out /tmp/mine    # all four, into /tmp/mine
    python -m chatlab.captures record --out chatlab/data/captures   # replace the committed ones

Without ``--out`` it records into a fresh temporary folder, so the committed
files are only replaced when you say so.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .core import protocol as p
from .errors import ProtocolError

CAPTURES = Path(__file__).resolve().parent / "data" / "captures"  # package data: the wheel ships them
NAMES = ("chat.pcap", "transfer.pcap", "fin_rst.pcap", "time_wait.pcap")

__all__ = ["CAPTURES", "NAMES", "Segment", "read", "show", "frames", "record", "main"]


# ---------------------------------------------------------------- reading


@dataclass
class Segment:
    """One TCP segment of a capture, as a student reads it in Wireshark."""

    number: int  # 1-based, as Wireshark numbers packets
    time: float  # seconds since the first packet
    src: tuple[str, int]
    dst: tuple[str, int]
    flags: str  # e.g. "SYN", "SYN,ACK", "PSH,ACK", "FIN,ACK", "RST"
    seq: int  # relative: 0 is the sender's SYN (as Wireshark shows it)
    ack: int  # relative to the other side's SYN; 0 when the ACK flag is off
    length: int  # payload bytes
    payload: bytes
    frames: list[str] = field(default_factory=list)  # chatlab frames that end in this segment
    note: str = ""  # what is left over: part of a frame that the next segment completes


_FLAG_NAMES = [("F", "FIN"), ("S", "SYN"), ("R", "RST"), ("P", "PSH"), ("A", "ACK"), ("U", "URG")]
_ORDER = ["SYN", "FIN", "RST", "PSH", "ACK", "URG"]


def _flags(tcp_flags: Any) -> str:
    text = str(tcp_flags)
    names = [name for letter, name in _FLAG_NAMES if letter in text]
    return ",".join(sorted(names, key=_ORDER.index))


def _describe(frame: p.Frame) -> str:
    if frame.type is p.FrameType.FILE_CHUNK and len(frame.payload) >= p.CHUNK_PREFIX.size:
        offset = p.CHUNK_PREFIX.unpack_from(frame.payload)[0]
        return f"FILE_CHUNK sid={frame.stream_id:#x} offset={offset} {len(frame.payload) - 8} bytes of file data"
    text = p.describe(frame)
    if frame.stream_id & p.INCOMING_STREAM_BIT:  # hex shows the server's top bit at a glance
        text = text.replace(f"sid={frame.stream_id}", f"sid={frame.stream_id:#x}")
    return text


class _Direction:
    """Reassembles one direction of one connection and cuts it into chatlab frames."""

    def __init__(self, isn: int) -> None:
        self.isn = isn
        self.next_seq = isn + 1
        self.decoder = p.FrameDecoder()
        self.broken = False
        self.partial = 0  # bytes of a frame not yet complete (header included)

    def take(self, seq: int, payload: bytes) -> tuple[list[str], str]:
        if self.broken or not payload:
            return [], ""
        skip = self.next_seq - seq  # a retransmission repeats bytes we already have
        if skip >= len(payload):
            return [], "(retransmission)"
        payload = payload[max(0, skip):]
        self.next_seq = seq + max(0, skip) + len(payload)
        continuing = self.partial > 0
        self.decoder.feed(payload)
        self.partial += len(payload)
        try:
            complete = list(self.decoder)
        except ProtocolError as exc:
            self.broken = True
            return [], f"not chatlab: {exc}"
        self.partial -= sum(p.HEADER_SIZE + len(f.payload) for f in complete)
        found = [_describe(f) for f in complete]
        if continuing and found:
            found[0] = "...end of " + found[0]
        note = ""
        if self.partial:
            note = f"+{self.partial} bytes of a frame that continues in a later segment"
        return found, note


def read(name: str | os.PathLike[str], port: int | None = None) -> list[Segment]:
    """The TCP segments of a capture, with chatlab frames decoded where they end.

    Args:
        name: a file in ``chatlab/data/captures`` (``"chat.pcap"``) or a path.
        port: only segments to or from this TCP port (default: all TCP segments).
    """
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.utils import rdpcap

    path = Path(name)
    if not path.exists():
        path = CAPTURES / name
    segments: list[Segment] = []
    directions: dict[tuple, _Direction] = {}
    start: float | None = None
    for number, packet in enumerate(rdpcap(str(path)), start=1):
        if TCP not in packet:
            continue
        ip = packet[IP] if IP in packet else packet[IPv6]
        tcp = packet[TCP]
        if port is not None and port not in (tcp.sport, tcp.dport):
            continue
        start = float(packet.time) if start is None else start
        src, dst = (ip.src, tcp.sport), (ip.dst, tcp.dport)
        flags = _flags(tcp.flags)
        if "SYN" in flags:
            directions[(src, dst)] = _Direction(tcp.seq)
        mine, theirs = directions.get((src, dst)), directions.get((dst, src))
        payload = bytes(tcp.payload)
        seg = Segment(
            number, round(float(packet.time) - start, 6), src, dst, flags,
            tcp.seq - mine.isn if mine else tcp.seq,
            (tcp.ack - theirs.isn if theirs else tcp.ack) if "ACK" in flags else 0,
            len(payload), payload,
        )
        if mine is not None:
            seg.frames, seg.note = mine.take(tcp.seq, payload)
        segments.append(seg)
    return segments


def frames(name: str | os.PathLike[str], port: int | None = None) -> list[tuple[int, str]]:
    """``(packet number, frame description)`` for every chatlab frame, in capture order."""
    return [(seg.number, text) for seg in read(name, port) for text in seg.frames]


def show(name: str | os.PathLike[str], port: int | None = None, payload_only: bool = False, width: int = 100) -> None:
    """Print a capture one segment a line: flags, relative seq/ack, length, chatlab frames.

    Ports are shown without the address (everything is on 127.0.0.1), and
    the server's port is marked with ``*`` (the side that answered a SYN).
    """
    segments = read(name, port)
    servers = {seg.src[1] for seg in segments if seg.flags == "SYN,ACK"}

    def end(addr: tuple[str, int]) -> str:
        return f"{addr[1]}{'*' if addr[1] in servers else ''}"

    print(f"{'no':>3} {'time':>7}  {'from':>6} > {'to':<6} {'flags':<8} {'seq':>6} {'ack':>6} {'len':>5}  chatlab")
    for seg in segments:
        if payload_only and not seg.length:
            continue
        what = "; ".join(seg.frames)
        if seg.note:
            what = f"{what}; {seg.note}" if what else seg.note
        line = (f"{seg.number:>3} {seg.time:7.3f}  {end(seg.src):>6} > {end(seg.dst):<6} {seg.flags:<8} "
                f"{seg.seq:>6} {seg.ack:>6} {seg.length:>5}  {what}")
        print(line if len(line) <= width else line[: width - 3] + "...")


# -------------------------------------------------------------- recording


class _Capture:
    """dumpcap on the loopback interface, filtered on one TCP port, while the body runs."""

    def __init__(self, path: Path, port: int, interface: str) -> None:
        dumpcap = shutil.which("dumpcap") or shutil.which("tshark")
        if dumpcap is None:
            raise RuntimeError("recording needs dumpcap or tshark (install Wireshark, or Debian's tshark package)")
        self.cmd = [dumpcap, "-i", interface, "-f", f"tcp port {port}", "-P", "-q", "-w", str(path)]
        self.path = path
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> _Capture:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not (self.path.exists() and self.path.stat().st_size > 0):  # the pcap header is written once it runs
            if self.proc.poll() is not None or time.monotonic() > deadline:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"dumpcap did not start: {err.strip()}")
            time.sleep(0.05)
        time.sleep(0.3)  # the filter is compiled and attached just before the header is written
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)  # let the last packets reach the capture
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        try:
            os.chmod(self.path, 0o644)  # dumpcap writes 0600; anyone may read a capture of loopback test traffic
        except OSError:
            pass


def _raw_client(address: tuple[str, int], nick: str) -> tuple[socket.socket, p.MessageDecoder]:
    sock = socket.create_connection(address, timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # every write its own segment
    decoder = p.MessageDecoder()
    sock.sendall(p.encode(p.Hello(nick)))
    _wait_for(sock, decoder, p.Welcome)
    return sock, decoder


def _wait_for(sock: socket.socket, decoder: p.MessageDecoder, kind: type) -> Any:
    while True:
        for message in decoder:
            if isinstance(message, kind):
                return message
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed while waiting for {kind.__name__}")
        decoder.feed(data)


def _pause() -> None:
    time.sleep(0.05)  # so each step is its own group of packets in the capture


def _chat(address: tuple[str, int]) -> None:
    alice, alice_in = _raw_client(address, "alice")
    _pause()
    bob, bob_in = _raw_client(address, "bob")
    _wait_for(alice, alice_in, p.Notice)  # bob joined
    _pause()
    alice.sendall(p.encode(p.Say("hi bob, welcome")))
    _wait_for(bob, bob_in, p.ChatMessage)
    _pause()
    # One frame in two writes: the header and half the payload, a pause, the rest.
    # With TCP_NODELAY each write leaves at once: the frame spans two segments.
    split = p.encode(p.Say("this frame was sent in two writes"))
    bob.sendall(split[:20])
    time.sleep(0.2)
    bob.sendall(split[20:])
    _wait_for(alice, alice_in, p.ChatMessage)
    _pause()
    # Two frames in one write: one segment carries both.
    bob.sendall(p.encode(p.Say("two frames")) + p.encode(p.Say("in one write")))
    _wait_for(alice, alice_in, p.ChatMessage)
    _wait_for(alice, alice_in, p.ChatMessage)
    _pause()
    bob.sendall(p.encode(p.Join("team")))
    _wait_for(bob, bob_in, p.Notice)
    _pause()
    alice.sendall(p.encode(p.Whisper("bob", "psst, over here")))
    _wait_for(bob, bob_in, p.PrivateMessage)
    _pause()
    for sock, decoder, nick in ((bob, bob_in, "bob"), (alice, alice_in, "alice")):
        sock.sendall(p.encode(p.Quit("bye")))
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
        sock.close()
        _pause()


def _transfer(address: tuple[str, int]) -> None:
    from .client import Client
    from .core.transfer import FixedWindow

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "hello.txt"
        source.write_bytes(b"".join(f"line {i:04d} of a small file\n".encode() for i in range(400)))  # 11 KB
        downloads = Path(tmp) / "downloads"
        downloads.mkdir()
        with Client.connect(address, nick="alice") as alice, \
                Client.connect(address, nick="bob", download_dir=downloads):
            time.sleep(0.1)
            transfer = alice.send_file(source, to="bob", strategy=FixedWindow(chunks=2, chunk_size=4096))
            transfer.wait(timeout=20)
            time.sleep(0.2)


def _listener() -> socket.socket:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    return listener


def _fin_rst(listener: socket.socket) -> None:
    address = listener.getsockname()
    # 1. A FIN: the client says HELLO and closes normally; the server reads b'' and closes too.
    client = socket.create_connection(address, timeout=5)
    conn, _ = listener.accept()
    client.sendall(p.encode(p.Hello("fin")))
    _pause()
    client.close()
    while conn.recv(65536):
        pass  # b'': the FIN arrived
    conn.close()
    _pause()
    # 2. A RST: SO_LINGER on with a zero timeout makes close() abort the connection.
    client = socket.create_connection(address, timeout=5)
    conn, _ = listener.accept()
    client.sendall(p.encode(p.Hello("rst")))
    _pause()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    try:
        while conn.recv(65536):
            pass
    except ConnectionResetError:
        pass  # what the server's recv() says about a RST
    conn.close()


def _time_wait(listener: socket.socket) -> None:
    address = listener.getsockname()
    client = socket.create_connection(address, timeout=5)
    conn, _ = listener.accept()
    client.sendall(p.encode(p.Hello("alice")))
    conn.recv(65536)
    conn.sendall(p.encode(p.ErrorMessage("closing", "the server closes first")))
    _pause()
    conn.close()  # the active close: the server sends the first FIN and ends in TIME_WAIT
    while client.recv(65536):
        pass
    _pause()
    client.close()  # the passive close: the client's FIN, the server's last ACK


def _with_server(body: Callable[[tuple[str, int]], None]) -> Callable[[Path, str], None]:
    def run(path: Path, interface: str) -> None:
        from .server import Server

        with Server(port=0, flood_limit=None) as server:
            with _Capture(path, server.address[1], interface):
                body(server.address)
    return run


def _with_listener(body: Callable[[socket.socket], None]) -> Callable[[Path, str], None]:
    def run(path: Path, interface: str) -> None:
        with _listener() as listener:
            with _Capture(path, listener.getsockname()[1], interface):
                body(listener)
    return run


SCENARIOS: dict[str, Callable[[Path, str], None]] = {
    "chat.pcap": _with_server(_chat),
    "transfer.pcap": _with_server(_transfer),
    "fin_rst.pcap": _with_listener(_fin_rst),
    "time_wait.pcap": _with_listener(_time_wait),
}


def record(out: str | os.PathLike[str] | None = None, names: tuple[str, ...] = NAMES,
           interface: str | None = None) -> Path:
    """Record the captures into ``out`` (a new temporary folder when ``None``); return the folder."""
    folder = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="chatlab-captures-"))
    folder.mkdir(parents=True, exist_ok=True)
    interface = interface or ("lo0" if sys.platform == "darwin" else "lo")
    for name in names:
        SCENARIOS[name](folder / name, interface)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chatlab.captures",
                                     description="Record or show chatlab's packet captures.")
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="record the loopback sessions with dumpcap")
    rec.add_argument("--out", help="folder to write into (default: a new temporary folder); "
                                   "--out chatlab/data/captures replaces the committed captures")
    rec.add_argument("--only", choices=NAMES, action="append", help="record only this one (repeatable)")
    rec.add_argument("--interface", help="loopback interface (default lo, lo0 on macOS)")
    shw = sub.add_parser("show", help="print a capture one segment a line")
    shw.add_argument("name", help=f"one of {', '.join(NAMES)} or a path")
    args = parser.parse_args(argv)
    if args.command == "record":
        folder = record(args.out, tuple(args.only or NAMES), args.interface)
        for name in args.only or NAMES:
            print(f"{folder / name}: {(folder / name).stat().st_size} bytes")
    else:
        show(args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
