"""chatlab.captures: reading the committed captures (scapy), and recording new ones where dumpcap may."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

pytest.importorskip("scapy", reason="reading captures needs scapy (pip install scapy; in the test extra)")

from chatlab import captures  # noqa: E402


def test_every_committed_capture_is_small_and_readable() -> None:
    for name in captures.NAMES:
        path = captures.CAPTURES / name
        assert path.stat().st_size < 64 * 1024, f"{name} should stay a few KB"
        segments = captures.read(name)
        assert segments[0].flags == "SYN" and segments[1].flags == "SYN,ACK" and segments[2].flags == "ACK"
        assert (segments[0].seq, segments[1].seq, segments[1].ack) == (0, 0, 1)  # relative, as Wireshark shows


def test_chat_capture_frames_and_the_split_and_glued_segments() -> None:
    segments = captures.read("chat.pcap")
    frames = [text for seg in segments for text in seg.frames]
    assert frames[0].startswith("HELLO") and '"nick":"alice"' in frames[0]
    assert any(text.startswith("WHISPER") and "psst" in text for text in frames)
    starts = [seg for seg in segments if "continues in a later segment" in seg.note]
    assert len(starts) == 1 and starts[0].frames == [] and starts[0].length == 20
    ends = [seg for seg in segments if seg.frames and seg.frames[0].startswith("...end of SAY")]
    assert len(ends) == 1 and ends[0].number > starts[0].number
    glued = [seg for seg in segments if [f.split()[0] for f in seg.frames] == ["SAY", "SAY"]]
    assert len(glued) == 1 and "in one write" in glued[0].frames[1]


def test_relative_seq_and_ack_follow_the_bytes() -> None:
    segments = captures.read("chat.pcap")
    client = segments[0].src
    sent = [seg for seg in segments if seg.src == client and seg.length]
    for before, after in zip(sent, sent[1:]):
        assert after.seq == before.seq + before.length  # nothing lost on loopback


def test_fin_rst_capture() -> None:
    segments = captures.read("fin_rst.pcap")
    flags = [seg.flags for seg in segments]
    assert flags.count("FIN,ACK") == 2
    assert [f for f in flags if "RST" in f] == ["RST,ACK"]
    rst = next(seg for seg in segments if "RST" in seg.flags)
    assert rst.src[1] != segments[1].src[1]  # the client aborted, not the server


def test_time_wait_capture_the_server_closes_first() -> None:
    segments = captures.read("time_wait.pcap")
    server = segments[1].src
    fins = [seg for seg in segments if "FIN" in seg.flags]
    assert [seg.src == server for seg in fins] == [True, False]  # active close by the server
    assert segments[-1].src == server and segments[-1].flags == "ACK"  # its last ACK, then TIME_WAIT


def test_show_prints_one_line_per_segment(capsys: pytest.CaptureFixture[str]) -> None:
    captures.show("fin_rst.pcap")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + len(captures.read("fin_rst.pcap"))
    assert "RST,ACK" in lines[-1] and "HELLO" in "".join(lines)


def test_frames_lists_packet_numbers() -> None:
    assert [text.split()[0] for _, text in captures.frames("fin_rst.pcap")] == ["HELLO", "HELLO"]


@pytest.mark.skipif(shutil.which("dumpcap") is None, reason="recording needs dumpcap (Wireshark / tshark)")
@pytest.mark.skipif(not sys.platform.startswith("linux") or os.geteuid() != 0,
                    reason="capturing on lo needs root (or the wireshark group) on Linux")
def test_record_writes_a_fresh_capture_into_the_folder_given(tmp_path) -> None:  # type: ignore[no-untyped-def]
    folder = captures.record(tmp_path, names=("fin_rst.pcap",))
    assert folder == tmp_path
    flags = [seg.flags for seg in captures.read(tmp_path / "fin_rst.pcap")]
    assert "RST,ACK" in flags and flags.count("FIN,ACK") == 2


def test_the_ping_capture_shows_loss_duplication_and_the_icmp_error() -> None:
    datagrams = captures.read_datagrams("ping.pcap")
    assert captures.UDP_NAMES == ("ping.pcap",) and (captures.CAPTURES / "ping.pcap").stat().st_size < 64 * 1024
    client, link = datagrams[0].src[1], datagrams[0].dst[1]
    to_link = [d.payload for d in datagrams if d.protocol == "UDP" and d.dst[1] == link]
    back = [d.payload for d in datagrams if d.protocol == "UDP" and d.dst[1] == client]
    assert to_link == [f"PING {k}".encode() for k in range(1, 9)]  # the client sent eight
    assert len(back) < 8 + 1 and back.count(b"PING 2") == 2  # some lost on the way, one duplicated
    icmp = [d for d in datagrams if d.protocol == "ICMP"]
    assert len(icmp) == 1 and icmp[0].note.startswith("port unreachable")
    assert f"port {datagrams[-2].dst[1]}" in icmp[0].note  # about the datagram just before it


def test_show_datagrams_names_the_ports(capsys) -> None:  # type: ignore[no-untyped-def]
    first = captures.read_datagrams("ping.pcap")[0]
    captures.show_datagrams("ping.pcap", names={first.src[1]: "client", first.dst[1]: "link"})
    lines = capsys.readouterr().out.splitlines()
    assert "client > link" in lines[1] and "ICMP" in lines[-1]
