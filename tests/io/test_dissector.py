"""wireshark/chatlab.lua, run by tshark over the committed captures.

Skipped (with the reason) where tshark is not installed; `.ci/run` installs
Debian's tshark package when it runs as root with apt-get.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LUA = ROOT / "wireshark" / "chatlab.lua"
CAPTURES = ROOT / "chatlab" / "data" / "captures"
TSHARK = shutil.which("tshark")

pytestmark = pytest.mark.skipif(
    TSHARK is None,
    reason="tshark is not installed (Debian/Ubuntu: apt-get install tshark; .ci/run installs it when run as root)",
)


def tshark(capture: str, *args: str, heuristic: bool = False) -> list[list[str]]:
    """Run tshark with the dissector; one list of tab-separated fields per output line."""
    cmd = [TSHARK, "-n", "-X", f"lua_script:{LUA}", "-o", f"chatlab.heuristic:{'TRUE' if heuristic else 'FALSE'}",
           "-r", str(CAPTURES / capture), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Lua" not in done.stderr and "rror" not in done.stderr, done.stderr  # the script loaded cleanly
    return [line.split("\t") for line in done.stdout.splitlines()]


def server_port(capture: str) -> int:
    """The port that answered the first SYN."""
    rows = tshark(capture, "-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 1", "-T", "fields", "-e", "tcp.srcport")
    return int(rows[0][0])


def decoded(capture: str, *fields: str, display_filter: str = "chatlab", how: str = "decode-as") -> list[list[str]]:
    port = server_port(capture)
    how_args = {
        "decode-as": ["-d", f"tcp.port=={port},chatlab"],
        "preference": ["-o", f"chatlab.port:{port}"],
        "heuristic": [],
    }[how]
    args = [*how_args, "-Y", display_filter, "-T", "fields", "-e", "frame.number"]
    for name in fields:
        args += ["-e", name]
    return tshark(capture, *args, heuristic=how == "heuristic")


def frame_types(capture: str, how: str = "decode-as") -> list[str]:
    """Every chatlab frame's type name, in capture order (several per packet when glued)."""
    names = {"0x01": "HELLO", "0x02": "WELCOME", "0x03": "ERROR", "0x06": "QUIT", "0x10": "SAY", "0x11": "WHISPER",
             "0x12": "JOIN", "0x20": "CHAT", "0x21": "PRIVATE", "0x22": "NOTICE", "0x30": "FILE_OFFER",
             "0x31": "FILE_ACCEPT", "0x33": "FILE_CHUNK", "0x34": "FILE_ACK", "0x35": "FILE_DONE"}
    return [names.get(t, t) for row in decoded(capture, "chatlab.type", how=how) for t in row[1].split(",")]


def test_chat_capture_frame_types_in_order() -> None:
    types = frame_types("chat.pcap")
    # alice and bob say HELLO and get WELCOME; bob's arrival is a NOTICE for alice
    assert types[:2] == ["HELLO", "WELCOME"] and types.count("HELLO") == 2 and types.count("WELCOME") == 2
    assert [t for t in types if t in ("SAY", "WHISPER", "JOIN", "QUIT")] == [
        "SAY", "SAY", "SAY", "SAY", "JOIN", "WHISPER", "QUIT", "QUIT"]
    assert types.count("CHAT") == 8  # four SAYs, each to both members
    assert types.count("PRIVATE") == 2  # the whisper to bob, and alice's copy


def test_the_dissector_agrees_with_chatlab_protocol_py() -> None:
    pytest.importorskip("scapy")
    from chatlab import captures

    for name in ("chat.pcap", "transfer.pcap"):
        ours = [text.removeprefix("...end of ").split()[0] for _, text in captures.frames(name)]
        assert frame_types(name) == ours, name


def test_json_payloads_are_shown_as_text() -> None:
    rows = decoded("chat.pcap", "chatlab.json", display_filter="chatlab.type == 0x11")
    assert len(rows) == 1
    assert rows[0][1] == '{"to":"bob","text":"psst, over here","action":false}'


def test_a_frame_split_across_two_segments_is_reassembled() -> None:
    rows = decoded("chat.pcap", "tcp.len", "tcp.segment.count", "chatlab.length", "chatlab.json",
                   display_filter='chatlab.type == 0x10 && chatlab.json contains "two writes"')
    assert len(rows) == 1, rows
    _, segment_len, segments, payload_len, text = rows[0]
    assert segments == "2"
    assert int(segment_len) < 12 + int(payload_len)  # this segment alone does not hold the frame
    assert text == '{"text":"this frame was sent in two writes","action":false}'


def test_two_frames_glued_in_one_segment_are_both_shown() -> None:
    rows = decoded("chat.pcap", "chatlab.type", display_filter='chatlab.json contains "in one write"')
    said = [row for row in rows if row[1] == "0x10,0x10"]
    assert len(said) == 1, rows


def test_transfer_stream_ids_chunk_offsets_and_acks() -> None:
    rows = decoded("transfer.pcap", "chatlab.type", "chatlab.stream_id", "chatlab.chunk.offset",
                   "chatlab.ack.received", display_filter="chatlab.type == 0x33 || chatlab.type == 0x34")
    chunks = [(row[2], int(row[3])) for row in rows if row[1] == "0x33"]
    sent = [offset for sid, offset in chunks if sid == "0x00000001"]
    forwarded = [offset for sid, offset in chunks if sid == "0x80000001"]  # the server's numbering, top bit set
    assert sent == forwarded == [0, 4096, 8192]
    acks = [int(row[4]) for row in rows if row[1] == "0x34" and row[2] == "0x00000001"]
    assert acks == sorted(acks) and acks[-1] == 10400  # cumulative, up to the whole file
    incoming = decoded("transfer.pcap", "chatlab.stream_id.incoming", display_filter="chatlab.stream_id.incoming")
    assert incoming, "the server's stream ids are flagged as incoming"


def test_fin_and_rst_capture() -> None:
    assert frame_types("fin_rst.pcap") == ["HELLO", "HELLO"]
    resets = tshark("fin_rst.pcap", "-Y", "tcp.flags.reset == 1", "-T", "fields", "-e", "frame.number")
    fins = tshark("fin_rst.pcap", "-Y", "tcp.flags.fin == 1", "-T", "fields", "-e", "frame.number")
    assert len(resets) == 1 and len(fins) == 2


def test_the_port_preference_and_the_heuristic_decode_the_same() -> None:
    expected = frame_types("chat.pcap")
    assert frame_types("chat.pcap", how="preference") == expected
    assert frame_types("chat.pcap", how="heuristic") == expected


def test_without_port_or_heuristic_nothing_is_chatlab() -> None:
    assert tshark("chat.pcap", "-Y", "chatlab", "-T", "fields", "-e", "frame.number") == []


# ------------------------------------------------- synthetic captures: IRC, GBK, a split first frame, direct


def write_pcap(path: Path, conversations: list[tuple[int, list[tuple[str, bytes]]]]) -> None:
    """A pcap of TCP connections to 127.0.0.1:``port``: each ``(port, [("c"|"s", payload), ...])``
    with its handshake, sequence numbers that add up, and one segment per payload."""
    import struct

    records = []
    t = 1_700_000_000.0

    def packet(src: int, dst: int, seq: int, ack: int, flags: int, data: bytes = b"") -> None:
        nonlocal t
        tcp = struct.pack("!HHIIBBHHH", src, dst, seq, ack, 5 << 4, flags, 65535, 0, 0) + data
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + tcp
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        t += 0.001
        records.append(struct.pack("<IIII", int(t), int(t % 1 * 1e6), len(frame), len(frame)) + frame)

    for n, (port, turns) in enumerate(conversations):
        client = 40000 + n
        cseq, sseq = 1000, 5000
        packet(client, port, cseq, 0, 0x02)
        packet(port, client, sseq, cseq + 1, 0x12)
        cseq, sseq = cseq + 1, sseq + 1
        packet(client, port, cseq, sseq, 0x10)
        for who, data in turns:
            if who == "c":
                packet(client, port, cseq, sseq, 0x18, data)
                cseq += len(data)
            else:
                packet(port, client, sseq, cseq, 0x18, data)
                sseq += len(data)
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    path.write_bytes(header + b"".join(records))


def run_tshark(path: Path, *args: str, heuristic: bool = True) -> tuple[list[list[str]], str]:
    cmd = [TSHARK, "-n", "-X", f"lua_script:{LUA}", "-o", f"chatlab.heuristic:{'TRUE' if heuristic else 'FALSE'}",
           "-r", str(path), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Lua" not in done.stderr, done.stderr
    return [line.split("\t") for line in done.stdout.splitlines()], done.stderr


def test_irc_text_on_the_chatlab_port_is_shown_as_irc_not_as_malformed_chatlab(tmp_path) -> None:
    from chatlab.core import protocol as p

    capture = tmp_path / "irc.pcap"
    write_pcap(capture, [
        (7777, [("c", b"NICK carol\r\nUSER carol 0 * :Carol\r\n"), ("s", b":chatlab 001 carol :Welcome\r\n"),
                ("c", b"PRIVMSG #lobby :hi\r\n")]),
        (7777, [("c", "你好\r\n".encode("gbk")), ("s", b":chatlab NOTICE * :not valid UTF-8\r\n")]),  # starts c4 e3
        (7777, [("c", p.encode(p.Hello("alice"))), ("s", p.encode(p.Welcome("alice", "lobby")))]),
    ])
    rows, _ = run_tshark(capture, "-Y", "irc", "-T", "fields", "-e", "tcp.stream", "-e", "irc.request.command",
                         "-e", "irc.response.command")
    streams = {row[0] for row in rows}
    assert streams == {"0", "1"}, rows  # both text connections, each side, are IRC
    commands = {c for row in rows for cell in row[1:] for c in cell.split(",") if c}
    assert {"NICK", "USER", "PRIVMSG", "001", "NOTICE"} <= commands, rows
    experts, _ = run_tshark(capture, "-Y", "chatlab.not_chatlab || _ws.malformed", "-T", "fields", "-e", "frame.number")
    assert experts == []  # no "malformed chatlab frame" for text
    frames, _ = run_tshark(capture, "-Y", "chatlab", "-T", "fields", "-e", "tcp.stream", "-e", "chatlab.type")
    assert frames == [["2", "0x01"], ["2", "0x02"]]  # the binary connection is still chatlab


def test_a_first_frame_split_after_one_or_two_bytes_is_found_by_the_heuristic(tmp_path) -> None:
    from chatlab.core import protocol as p

    hello, say = p.encode(p.Hello("alice")), p.encode(p.Say("split early"))
    capture = tmp_path / "split.pcap"
    write_pcap(capture, [(45678, [("c", hello[:1]), ("c", hello[1:] + say)]),
                         (45679, [("c", hello[:2]), ("c", hello[2:5]), ("c", hello[5:] + say)])])
    rows, _ = run_tshark(capture, "-Y", "chatlab", "-T", "fields", "-e", "tcp.stream", "-e", "chatlab.type")
    assert [(row[0], t) for row in rows for t in row[1].split(",")] == [
        ("0", "0x01"), ("0", "0x10"), ("1", "0x01"), ("1", "0x10")]


def test_the_direct_paths_token_is_found_on_its_own_port(tmp_path) -> None:
    token = "0123456789abcdef" * 2
    capture = tmp_path / "direct.pcap"
    write_pcap(capture, [(40123, [("c", token.encode() + b"the file's first bytes"), ("c", b"more bytes" * 10)])])
    rows, _ = run_tshark(capture, "-Y", "chatlab_direct", "-T", "fields", "-e", "chatlab_direct.token",
                         "-e", "chatlab_direct.data")
    assert [row[0] for row in rows] == [token, ""]
    assert bytes.fromhex(rows[0][1].replace(":", "")) == b"the file's first bytes"
