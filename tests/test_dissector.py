"""wireshark/chatlab.lua, run by tshark over the committed captures.

Skipped (with the reason) where tshark is not installed; `.ci/run` installs
Debian's tshark package when it runs as root with apt-get.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
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
