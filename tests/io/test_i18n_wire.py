"""Chinese text on the wire: nicknames, rooms, messages and file names arrive intact.

The protocol is UTF-8 end to end (docs/PROTOCOL.md), and so is the IRC text
mode (docs/IRC.md), so "小明" in a nickname is 6 bytes on the wire and comes
out as "小明" at the other end, between binary and text clients alike, with
every split TCP may make of it.  An old Windows console (code page 936) sends
GBK instead: "你好" is b"\\xc4\\xe3\\xba\\xc3" there, which is not UTF-8.  The
server must say so clearly (an ERROR frame to a binary client, a NOTICE to a
text client), and never pass the bytes on as mojibake ("���") to the others.
"""

from __future__ import annotations

import hashlib
import socket

import pytest

import chatlab
from chatlab.core import protocol as p

NICKS = ("小明", "李华")
ROOM = "网络实验室"
LINE = "大家好！今天讲三次握手和粘包。"
WHISPER = "悄悄话：带宽时延积是多少？"
FILE_NAME = "实验报告 第一章.txt"
GBK_HELLO = "你好".encode("gbk")


@pytest.fixture
def server():
    with chatlab.Server(port=0) as server:
        yield server


def test_chinese_nicks_rooms_lines_and_whispers(server):
    with chatlab.Client.connect(server.address, nick=NICKS[0]) as ming, \
         chatlab.Client.connect(server.address, nick=NICKS[1]) as hua:
        assert ming.nick == "小明"
        ming.join(ROOM)
        hua.join(ROOM)
        ming.say(LINE)
        got = hua.wait_for(chatlab.ChatMessage, timeout=5, predicate=lambda m: m.text == LINE)
        assert (got.sender, got.room) == ("小明", ROOM)
        ming.action("挥挥手")
        acted = hua.wait_for(chatlab.ChatMessage, timeout=5, predicate=lambda m: m.action)
        assert acted.text == "挥挥手"
        ming.whisper("李华", WHISPER)
        private = hua.wait_for(chatlab.PrivateMessage, timeout=5)
        assert (private.sender, private.to, private.text) == ("小明", "李华", WHISPER)
        who = hua.who()
        assert who.users == {"小明": ROOM, "李华": ROOM}


def test_a_chinese_nick_is_unique_too(server):
    with chatlab.Client.connect(server.address, nick="小明"):
        with pytest.raises(chatlab.NickError) as refused:
            chatlab.Client.connect(server.address, nick="小明")
    assert refused.value.code == "nick-taken"


def test_a_file_with_a_chinese_name(server, tmp_path):
    source = tmp_path / FILE_NAME
    source.write_bytes("第一章 套接字\n".encode() * 5000)
    downloads = tmp_path / "下载"
    downloads.mkdir()
    with chatlab.Client.connect(server.address, nick="小明") as ming, \
         chatlab.Client.connect(server.address, nick="李华", download_dir=downloads) as hua:
        transfer = ming.send_file(source, to="李华")
        transfer.wait(timeout=60)
        got = hua.wait_for(chatlab.FileReceived, timeout=60)
    assert (got.sender, got.name) == ("小明", FILE_NAME)
    assert got.path == downloads / FILE_NAME
    assert hashlib.sha256(got.path.read_bytes()).hexdigest() == hashlib.sha256(source.read_bytes()).hexdigest()


def _read_frames(sock: socket.socket, until: type, timeout: float = 5.0) -> list:
    """Messages from a raw socket up to the first ``until`` (or the end of the connection)."""
    sock.settimeout(timeout)
    decoder, messages = p.FrameDecoder(), []
    while True:
        data = sock.recv(65536)
        if not data:
            return messages
        decoder.feed(data)
        for frame in decoder:
            messages.append(p.decode_message(frame))
            if isinstance(messages[-1], until):
                return messages


def test_a_gbk_line_gets_a_clear_error_not_mojibake(server):
    """A SAY whose text is GBK bytes: an ERROR that says "not valid UTF-8", and nobody receives garbage."""
    with chatlab.Client.connect(server.address, nick="李华") as hua, \
         socket.create_connection(server.address, timeout=5) as old_console:
        old_console.sendall(p.encode(p.Hello(nick="老电脑")))
        assert isinstance(_read_frames(old_console, p.Welcome)[-1], p.Welcome)
        payload = b'{"text":"' + GBK_HELLO + b'"}'
        old_console.sendall(p.pack_header(p.FrameType.SAY, len(payload)) + payload)
        error = _read_frames(old_console, p.ErrorMessage)[-1]
        assert isinstance(error, p.ErrorMessage)
        assert "UTF-8" in error.text, error
        assert old_console.recv(1) == b""  # the stream can no longer be trusted: disconnected
        hua.say("还在吗？")  # the others chat on ...
        assert hua.wait_for(chatlab.ChatMessage, timeout=5, predicate=lambda m: m.sender == "李华").text == "还在吗？"
        seen = [e for e in hua.drain() if isinstance(e, (chatlab.ChatMessage, chatlab.PrivateMessage))]
        assert not any("\ufffd" in e.text or "老电脑" == e.sender for e in seen)  # ... and saw no mojibake


def test_a_gbk_nick_is_refused_clearly(server):
    with socket.create_connection(server.address, timeout=5) as old_console:
        payload = b'{"nick":"' + GBK_HELLO + b'"}'
        old_console.sendall(p.pack_header(p.FrameType.HELLO, len(payload)) + payload)
        messages = _read_frames(old_console, p.ErrorMessage)
    assert messages and isinstance(messages[-1], p.ErrorMessage)
    assert "UTF-8" in messages[-1].text


# --------------------------------------------------------------------------
# Text (IRC) clients: nc, telnet, irssi... share the rooms in UTF-8
# --------------------------------------------------------------------------



class _TextClient:
    """A raw IRC-speaking socket, as nc or an IRC client would be."""

    def __init__(self, address: tuple[str, int], nick: str) -> None:
        self.sock = socket.create_connection(address, timeout=5)
        self.buffer = b""
        self.send(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\nJOIN #lobby\r\n".encode())  # IRC clients join themselves
        self.until(b" 366 ")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def until(self, marker: bytes) -> bytes:
        """Every line up to and including the first one that holds ``marker``."""
        while marker not in self.buffer:
            data = self.sock.recv(65536)
            assert data, f"the server closed the connection before {marker!r}; got {self.buffer!r}"
            self.buffer += data
        end = self.buffer.index(b"\n", self.buffer.index(marker)) + 1
        lines, self.buffer = self.buffer[:end], self.buffer[end:]
        return lines

    def close(self) -> None:
        self.sock.close()


def test_chinese_between_a_text_client_and_a_binary_client(server):
    text_client = _TextClient(server.address, "小明")
    try:
        with chatlab.Client.connect(server.address, nick="李华") as hua:
            hua.join(ROOM)
            text_client.send(f"JOIN #{ROOM}\r\n".encode())
            text_client.until(f"JOIN #{ROOM}".encode())
            text_client.send(f"PRIVMSG #{ROOM} :{LINE}\r\n".encode())
            got = hua.wait_for(chatlab.ChatMessage, timeout=5, predicate=lambda m: m.sender == "小明")
            assert (got.room, got.text) == (ROOM, LINE)
            hua.say("收到，谢谢！")
            line = text_client.until("收到".encode()).decode("utf-8").splitlines()[-1]
            assert line == f":李华!李华@chatlab PRIVMSG #{ROOM} :收到，谢谢！"
            hua.whisper("小明", WHISPER)
            line = text_client.until("悄悄话".encode()).decode("utf-8").splitlines()[-1]
            assert line == f":李华!李华@chatlab PRIVMSG 小明 :{WHISPER}"
    finally:
        text_client.close()


def test_a_gbk_line_from_a_text_client_gets_a_notice_not_mojibake(server):
    """An old Windows console (code page 936) sends GBK: the line is refused with a NOTICE that says why."""
    text_client = _TextClient(server.address, "老电脑")
    try:
        with chatlab.Client.connect(server.address, nick="李华") as hua:
            text_client.send(b"PRIVMSG #lobby :" + GBK_HELLO + b"\r\n")
            notice = text_client.until(b"NOTICE").decode("utf-8").splitlines()[-1]
            assert "not valid UTF-8" in notice and "UTF-8" in notice.split("not valid UTF-8", 1)[1]
            text_client.send("PRIVMSG #lobby :现在用 UTF-8 了\r\n".encode())  # the connection goes on
            got = hua.wait_for(chatlab.ChatMessage, timeout=5, predicate=lambda m: m.sender == "老电脑")
            assert got.text == "现在用 UTF-8 了"  # the GBK line never reached the room, as mojibake or at all
            assert not [e for e in hua.drain() if isinstance(e, chatlab.ChatMessage) and "\ufffd" in e.text]
    finally:
        text_client.close()


def test_a_gbk_first_line_is_text_not_a_chatlab_frame(server):
    """GBK "你" is c4 e3: chatlab's magic byte first. The server still takes it for text and answers as IRC."""
    with socket.create_connection(server.address, timeout=5) as old_console:
        old_console.sendall(GBK_HELLO + b"\r\n")
        data = b""
        while b"\n" not in data:
            chunk = old_console.recv(4096)
            assert chunk, f"closed without an answer; got {data!r}"
            data += chunk
    assert data.startswith(b":chatlab NOTICE") and b"UTF-8" in data
