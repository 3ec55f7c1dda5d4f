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
``room_key.pcap``         bob joins room ``vault`` with the key ``orchid-9``
                          and says a line, in the clear (notebook 11)
``tls_room.pcap``         the same over TLS: ciphertext only; its session keys
                          are in ``tls_room.keys`` (SSLKEYLOGFILE format), so
                          Wireshark can decrypt this one session
``ping.pcap``             UDP: eight pings through a lossy link emulator
                          (both legs: client to link, link to echo server),
                          then a datagram to a closed port and the ICMP port
                          unreachable that answers it (notebook 10)
========================  ===================================================

Reading them needs scapy (``pip install scapy``, in the ``notebooks`` and
``test`` extras)::

    from chatlab import captures
    captures.show("fin_rst.pcap")          # one line per packet: flags, seq/ack, length, chatlab frames
    captures.show_datagrams("ping.pcap")   # UDP and ICMP: one line per datagram

Recording needs ``dumpcap`` (it comes with Wireshark / tshark) and the right
to capture on the loopback interface (root, or the ``wireshark`` group on
Linux)::

    python -m chatlab.captures record --out /tmp/mine    # all five, into /tmp/mine
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
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .core import protocol as p
from .errors import ProtocolError

CAPTURES = Path(__file__).resolve().parent / "data" / "captures"  # package data: the wheel ships them
NAMES = ("chat.pcap", "transfer.pcap", "fin_rst.pcap", "time_wait.pcap",  # TCP: read() and show()
         "room_key.pcap", "tls_room.pcap")
ROOM_KEY = "orchid-9"  # the secret in room_key.pcap and tls_room.pcap
UDP_NAMES = ("ping.pcap",)  # UDP and ICMP: read_datagrams() and show_datagrams()

__all__ = ["CAPTURES", "NAMES", "UDP_NAMES", "Segment", "Datagram", "read", "show", "frames",
           "read_datagrams", "show_datagrams", "record", "main"]


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


TLS_CONTENT_TYPES = {20: "change_cipher_spec", 21: "alert", 22: "handshake", 23: "application_data"}


def _tls_records(payload: bytes) -> list[str]:
    """Name the TLS records a segment starts with (type and length); their content is ciphertext."""
    names = []
    offset = 0
    while offset + 5 <= len(payload):
        kind, length = payload[offset], int.from_bytes(payload[offset + 3 : offset + 5], "big")
        if kind not in TLS_CONTENT_TYPES:
            break
        names.append(f"TLS {TLS_CONTENT_TYPES[kind]} len={length}")
        offset += 5 + length
    return names or ["TLS (continued)"]


class _Direction:
    """Reassembles one direction of one connection and cuts it into chatlab frames."""

    def __init__(self, isn: int) -> None:
        self.isn = isn
        self.next_seq = isn + 1
        self.decoder = p.FrameDecoder()
        self.broken = False
        self.partial = 0  # bytes of a frame not yet complete (header included)
        self.tls = False  # the connection started with a TLS ClientHello

    def take(self, seq: int, payload: bytes) -> tuple[list[str], str]:
        if not payload:
            return [], ""
        skip = self.next_seq - seq  # a retransmission repeats bytes we already have
        if skip >= len(payload):
            return [], "(retransmission)"
        payload = payload[max(0, skip):]
        self.next_seq = seq + max(0, skip) + len(payload)
        if self.tls or (not self.broken and not self.partial and payload[:1] == b"\x16" and payload[1:2] == b"\x03"):
            self.tls = True  # a TLS connection: name its records, the rest is ciphertext
            return _tls_records(payload), ""
        if self.broken:
            return [], ""
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


@dataclass
class Datagram:
    """One UDP datagram (or an ICMP error about one) of a capture."""

    number: int  # 1-based, as Wireshark numbers packets
    time: float  # seconds since the first packet
    src: tuple[str, int]
    dst: tuple[str, int]
    protocol: str  # "UDP" or "ICMP"
    length: int  # UDP payload bytes (0 for ICMP)
    payload: bytes
    note: str = ""  # for ICMP: what it says, e.g. "port unreachable (a UDP datagram to port 40000)"


_ICMP_UNREACHABLE = {3: "port unreachable", 1: "host unreachable", 0: "network unreachable"}


def read_datagrams(name: str | os.PathLike[str]) -> list[Datagram]:
    """The UDP datagrams and ICMP errors of a capture, in order.

    Args:
        name: a file in ``chatlab/data/captures`` (``"ping.pcap"``) or a path.
    """
    from scapy.layers.inet import ICMP, IP, UDP, UDPerror
    from scapy.utils import rdpcap

    path = Path(name)
    if not path.exists():
        path = CAPTURES / name
    found: list[Datagram] = []
    start: float | None = None
    for number, packet in enumerate(rdpcap(str(path)), start=1):
        if IP not in packet:
            continue
        ip = packet[IP]
        start = float(packet.time) if start is None else start
        when = round(float(packet.time) - start, 6)
        if ICMP in packet:
            icmp = packet[ICMP]
            what = _ICMP_UNREACHABLE.get(icmp.code, f"code {icmp.code}") if icmp.type == 3 else f"type {icmp.type}"
            note = what
            if UDPerror in packet:
                note += f" (about a UDP datagram to port {packet[UDPerror].dport})"
            found.append(Datagram(number, when, (ip.src, 0), (ip.dst, 0), "ICMP", 0, b"", note))
        elif UDP in packet:
            udp = packet[UDP]
            payload = bytes(udp.payload)
            found.append(Datagram(number, when, (ip.src, udp.sport), (ip.dst, udp.dport), "UDP", len(payload), payload))
    return found


def show_datagrams(name: str | os.PathLike[str], width: int = 100, names: dict[int, str] | None = None) -> None:
    """Print a capture's UDP datagrams and ICMP errors one a line: ports, length, payload.

    Ports are shown without the address (everything is on 127.0.0.1), or
    by the name ``names`` gives them (``{54388: "client"}``).
    """
    names = names or {}
    w = max([5] + [len(n) for n in names.values()])
    print(f"{'no':>3} {'time':>7}  {'from':>{w}} > {'to':<{w}} {'proto':<5} {'len':>4}  payload")
    for d in read_datagrams(name):
        if d.protocol == "ICMP":
            line = f"{d.number:>3} {d.time:7.3f}  {'':>{w}}   {'':<{w}} ICMP  {'':>4}  {d.note}"
        else:
            text = d.payload.decode("ascii", "backslashreplace")
            src, dst = names.get(d.src[1], str(d.src[1])), names.get(d.dst[1], str(d.dst[1]))
            line = f"{d.number:>3} {d.time:7.3f}  {src:>{w}} > {dst:<{w}} UDP   {d.length:>4}  {text}"
        print(line if len(line) <= width else line[: width - 3] + "...")


# -------------------------------------------------------------- recording


class _Capture:
    """dumpcap on the loopback interface, filtered on one TCP port, while the body runs."""

    def __init__(self, path: Path, port: int, interface: str, bpf: str | None = None) -> None:
        dumpcap = shutil.which("dumpcap") or shutil.which("tshark")
        if dumpcap is None:
            raise RuntimeError("recording needs dumpcap or tshark (install Wireshark, or Debian's tshark package)")
        self.cmd = [dumpcap, "-i", interface, "-f", bpf or f"tcp port {port}", "-P", "-q", "-w", str(path)]
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


def _join_with_key(address: tuple[str, int], **connect: Any) -> None:
    from .client import Client

    with Client.connect(address, nick="bob", **connect) as bob:
        time.sleep(0.1)
        bob.join("vault", password=ROOM_KEY)
        _pause()
        bob.say("the plan is on the wiki")
        time.sleep(0.2)


def _tls_room(path: Path, interface: str) -> None:
    """``tls_room.pcap`` and its key log ``tls_room.keys``: a TLS server with a throw-away class CA."""
    from . import certs
    from .server import Server
    from .tls import client_context

    with tempfile.TemporaryDirectory() as tmp:
        files = certs.write_class_files(tmp, ["localhost", "127.0.0.1"])
        keys = path.with_suffix(".keys")
        keys.unlink(missing_ok=True)
        context = client_context(str(files["ca"]))
        context.keylog_filename = str(keys)  # what SSLKEYLOGFILE=... does for ssl.create_default_context()
        with Server(port=0, flood_limit=None, tls_cert=str(files["cert"]), tls_key=str(files["key"])) as server:
            with _Capture(path, server.address[1], interface):
                _join_with_key(server.address, tls=context, server_hostname="localhost")


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


PING_SEED = 46  # with 8 pings: one lost on the way there, one reply lost on the way back, one ping duplicated


def _ping(path: Path, interface: str) -> None:
    """Eight pings through a lossy DatagramLink to an echo server, then a datagram to a closed port."""
    from .netem_udp import DatagramLink, DatagramProfile

    stop = threading.Event()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as echo, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        echo.bind(("127.0.0.1", 0))
        echo.settimeout(0.05)
        client.bind(("127.0.0.1", 0))
        probe.bind(("127.0.0.1", 0))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gone:
            gone.bind(("127.0.0.1", 0))
            closed = gone.getsockname()[1]  # closed again: nothing listens there

        def serve() -> None:
            while not stop.is_set():
                try:
                    data, peer = echo.recvfrom(2048)
                except (TimeoutError, OSError):
                    continue
                echo.sendto(data, peer)

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        profile = DatagramProfile(delay=0.005, loss=0.15, duplicate=0.1, seed=PING_SEED)
        try:
            with DatagramLink(echo.getsockname()[:2], profile) as link:
                ports = (echo.getsockname()[1], link.address[1])
                # the ICMP error carries the first bytes of the datagram it is about: its UDP
                # destination port sits 30 bytes into the ICMP message (8 + a 20-byte IP header + 2)
                bpf = (f"udp port {ports[0]} or udp port {ports[1]} or udp port {closed}"
                       f" or (icmp and icmp[30:2] = {closed})")
                with _Capture(path, 0, interface, bpf):
                    for k in range(1, 9):
                        client.sendto(f"PING {k}".encode(), link.address)
                        time.sleep(0.05)
                    time.sleep(0.1)
                    probe.connect(("127.0.0.1", closed))  # a connected UDP socket hears the ICMP error
                    probe.send(b"anyone there?")
                    probe.settimeout(1)
                    try:
                        probe.recv(2048)
                    except ConnectionRefusedError:
                        pass  # what the ICMP port unreachable becomes
        finally:
            stop.set()
            server.join(5)


SCENARIOS: dict[str, Callable[[Path, str], None]] = {
    "chat.pcap": _with_server(_chat),
    "transfer.pcap": _with_server(_transfer),
    "fin_rst.pcap": _with_listener(_fin_rst),
    "time_wait.pcap": _with_listener(_time_wait),
    "room_key.pcap": _with_server(_join_with_key),
    "tls_room.pcap": _tls_room,
    "ping.pcap": _ping,
}


def record(out: str | os.PathLike[str] | None = None, names: tuple[str, ...] = NAMES + UDP_NAMES,
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
    rec.add_argument("--only", choices=NAMES + UDP_NAMES, action="append", help="record only this one (repeatable)")
    rec.add_argument("--interface", help="loopback interface (default lo, lo0 on macOS)")
    shw = sub.add_parser("show", help="print a capture one segment a line")
    shw.add_argument("name", help=f"one of {', '.join(NAMES + UDP_NAMES)} or a path")
    args = parser.parse_args(argv)
    if args.command == "record":
        folder = record(args.out, tuple(args.only or NAMES + UDP_NAMES), args.interface)
        for name in args.only or NAMES + UDP_NAMES:
            print(f"{folder / name}: {(folder / name).stat().st_size} bytes")
    elif Path(args.name).name in UDP_NAMES:
        show_datagrams(args.name)
    else:
        show(args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
