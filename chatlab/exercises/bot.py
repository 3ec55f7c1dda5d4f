"""Exercise for notebook 05: a chat bot written with chatlab's client API.

The student writes::

    def run_bot(bot: chatlab.Client, stop: threading.Event) -> None:
        ...

``bot`` is already connected (as ``timebot``, in the room ``lobby``; one case
connects it under another nick, so the bot knows its own nick from ``bot.nick``).  The
function runs until ``stop`` is set or the connection closes, and then
returns (it never raises for either).  While it runs:

* someone says ``!time`` in the bot's room: the bot says
  ``the time is HH:MM:SS`` (local time) in that room;
* someone whispers ``!time`` to the bot: the bot whispers the same answer
  back, to that person only;
* anything else gets no answer: other lines, lines that merely contain
  ``!time`` (``"what's the !time?"``, ``"!timer"``), and the bot's own lines.

The command is the whole message, spaces around it ignored.  The exercise
itself is in notebook 05.  This checker's hints say what went wrong in terms
of what the server does (it sends every line back to its sender, among
others) and of what a bot must survive (long silences, a server that goes
away), never as the code to write.

:func:`check_bot` starts a fresh server for each case, connects the bot and a
few people, runs ``run_bot`` in a thread and prints which cases pass.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..client import Client
from ..core.protocol import ChatMessage, PrivateMessage
from ..i18n import N_, _
from ..server import Server
from ._report import NotWrittenYet, Report, describe_error, run_cases, student

BOT = "timebot"
ANSWER = re.compile(r"the time is (\d\d):(\d\d):(\d\d)")
REPLY_TIMEOUT = 2.0  # seconds an answer may take
QUIET = 0.6  # seconds of silence that count as "no answer"
SILENT_SPELL = 1.5  # seconds nobody speaks before the first !time (longer than a 1 s wait_for timeout)
STOP_GRACE = 1.5  # seconds run_bot may take to return after stop is set or the server goes away
BUSY_CALLS = 300  # wait_for calls during SILENT_SPELL of silence above which the bot is polling, not waiting
OTHER_NICK = "ticktock"  # the bot's nick in the case that catches a hard-coded 'timebot'

RunBot = Callable[[Client, threading.Event], Any]


class _NoAnswer(AssertionError):
    """The bot said nothing within REPLY_TIMEOUT (a case may explain that better)."""


@dataclass
class _Harness:
    server: Server
    bot: Client
    people: dict[str, Client]
    stop: threading.Event
    thread: threading.Thread
    run_bot: RunBot
    errors: list[BaseException] = field(default_factory=list)
    whispers: list[str] = field(default_factory=list)  # to whom the bot whispered
    calls: list[int] = field(default_factory=lambda: [0])  # how many times the bot called wait_for
    nick: str = BOT

    def say(self, nick: str, text: str) -> None:
        self.people[nick].say(text)

    def answers(self, nick: str, within: float, kind: type = ChatMessage) -> list[Any]:
        """Every message from the bot that ``nick`` receives in the next ``within`` seconds."""
        got = []
        deadline = time.monotonic() + within
        while (left := deadline - time.monotonic()) > 0:
            try:
                got.append(self.people[nick].wait_for(kind, timeout=left, predicate=lambda m: m.sender == self.nick))
            except TimeoutError:
                break
        return got

    def first_answer(self, nick: str, kind: type = ChatMessage) -> Any:
        self.check_alive()
        try:
            return self.people[nick].wait_for(kind, timeout=REPLY_TIMEOUT, predicate=lambda m: m.sender == self.nick)
        except TimeoutError:
            self.check_alive()
            if kind is ChatMessage:
                raise _NoAnswer(_("no answer in the room within {seconds:g} s").format(seconds=REPLY_TIMEOUT)) from None
            raise _NoAnswer(_("no answer as a whisper within {seconds:g} s").format(seconds=REPLY_TIMEOUT)) from None

    def check_alive(self) -> None:
        self.check_errors()
        if not self.thread.is_alive():
            raise AssertionError(
                _(
                    "run_bot returned while it should still be running: a bot runs until it is told to stop or"
                    " its connection closes, through any stretch of silence (a timeout while waiting"
                    " for a message means nobody spoke: go round the loop again)"
                )
            )

    def check_errors(self, when: str = "") -> None:
        if self.errors:
            exc = self.errors[0]
            if isinstance(exc, NotWrittenYet):
                raise exc
            error = describe_error(exc, [self.run_bot])
            raise AssertionError(_("run_bot raised {error}{when}").format(error=error, when=when))


@contextmanager
def _harness(run_bot: RunBot, people: tuple[str, ...] = ("alice", "carol"), nick: str = BOT) -> Iterator[_Harness]:
    run_bot = student(run_bot)
    with ExitStack() as stack:
        server = stack.enter_context(Server(port=0))
        bot = stack.enter_context(Client.connect(server.address, nick=nick))
        clients = {nick: stack.enter_context(Client.connect(server.address, nick=nick)) for nick in people}
        stop = threading.Event()
        errors: list[BaseException] = []

        def target() -> None:
            try:
                run_bot(bot, stop)
            except BaseException as exc:  # reported by the case, never raised in the checker's thread
                errors.append(exc)

        thread = threading.Thread(target=target, name="chatlab-student-bot", daemon=True)
        harness = _Harness(server, bot, clients, stop, thread, run_bot, errors, nick=nick)
        whisper = bot.whisper
        wait_for = bot.wait_for

        def counted_wait_for(*args: Any, **kwargs: Any) -> Any:  # how often the bot asks, for the busy-poll hint
            harness.calls[0] += 1
            return wait_for(*args, **kwargs)

        bot.wait_for = counted_wait_for  # type: ignore[method-assign]

        def noted_whisper(to: str, text: str) -> None:  # who the bot whispers to, for the hints
            harness.whispers.append(to)
            whisper(to, text)

        bot.whisper = noted_whisper  # type: ignore[method-assign]
        thread.start()
        try:
            time.sleep(0.05)  # let the bot reach its first wait_for
            yield harness
        finally:
            stop.set()
            thread.join(STOP_GRACE)


_machine_offset: int | None = None  # seconds east of UTC of the machine's own zone, before the checker's


@contextmanager
def _a_local_time_zone() -> Iterator[None]:
    """Meanwhile, a local time zone whose time is neither UTC nor the same on a 12-hour clock.

    On a machine that keeps UTC (most servers and containers), a bot that answers in UTC, or
    on a 12-hour clock in the morning, would give the right digits by chance.  Here the local
    time is some hours ahead of UTC and in the afternoon (15:00-16:59), so neither can pass.
    Only where ``time.tzset`` exists (not on Windows: there the machine's own zone stays).
    """
    global _machine_offset
    tzset = getattr(time, "tzset", None)
    _machine_offset = time.localtime().tm_gmtoff
    if tzset is None:
        yield
        return
    utc_hour = time.gmtime().tm_hour
    ahead = (15 - utc_hour) % 24 or 1  # hours ahead of UTC: 15:xx local (16:xx if UTC is 15:xx)
    old = os.environ.get("TZ")
    os.environ["TZ"] = f"CHK-{ahead}"  # POSIX: a zone named CHK, ``ahead`` hours east of Greenwich
    tzset()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        tzset()


def _seconds_of_day(t: time.struct_time) -> int:
    return t.tm_hour * 3600 + t.tm_min * 60 + t.tm_sec


def _check_answer(message: Any, asked: float) -> str:
    """The answer's time must lie between ``asked`` (time.time() just before the question) and now."""
    match = ANSWER.fullmatch(message.text)
    assert match, _("the answer should read 'the time is HH:MM:SS', got {text!r}").format(text=message.text)
    h, m, s = (int(g) for g in match.groups())
    said = h * 3600 + m * 60 + s
    now = time.time()
    start, end = time.localtime(asked), time.localtime(now)
    first = _seconds_of_day(start)
    span = (_seconds_of_day(end) - first) % 86400
    if (said - first) % 86400 <= span:
        return str(message.text)
    local = time.strftime("%H:%M:%S", end)
    # A time read before the question: in this zone, or in the machine's own (a bot that read it
    # before the checker started, when the machine's zone was in force).
    firsts = [first]
    if _machine_offset is not None:
        firsts.append(_seconds_of_day(time.gmtime(asked + _machine_offset)))
    earlier = min((f - said) % 86400 for f in firsts)
    if 0 < earlier <= 3600:
        raise AssertionError(
            _(
                "the answer says {said}, but the question was asked at {asked} (now {local}): the time in the"
                " answer is {seconds} s older than the question; it must be read when the question comes"
            ).format(said=message.text[-8:], asked=time.strftime("%H:%M:%S", start), local=local, seconds=earlier)
        )
    utc_first = _seconds_of_day(time.gmtime(asked))
    if (said - utc_first) % 86400 <= span and time.gmtime(asked).tm_hour != start.tm_hour:
        raise AssertionError(
            _(
                "the answer says {said}, the time in UTC, but the local time is {local}: the exercise asks"
                " for the local time. time.strftime('%H:%M:%S') gives it (not time.gmtime(),"
                " datetime.utcnow() or datetime.now(timezone.utc))"
            ).format(said=message.text[-8:], local=local)
        )
    if start.tm_hour >= 12 and (said + 12 * 3600 - first) % 86400 <= span:
        raise AssertionError(
            _(
                "the answer says {said}, but the local time is {local}: a 12-hour clock (%I) with no AM/PM"
                " cannot tell 3 in the morning from 3 in the afternoon. The exercise asks for HH:MM:SS on a"
                " 24-hour clock: %H"
            ).format(said=message.text[-8:], local=local)
        )
    raise AssertionError(_("the answer says {said}, but the local time is {local}").format(
        said=message.text[-8:], local=local
    ))


def _answers_time(run_bot: RunBot) -> str:
    with _harness(run_bot) as h:
        calls = h.calls[0]
        time.sleep(SILENT_SPELL)  # silence first: nobody asks right away in a real room
        h.check_alive()
        busy = h.calls[0] - calls
        assert busy <= BUSY_CALLS, _(
            "while nobody spoke for {seconds:g} s the bot asked for the next message {n} times: asking again"
            " and again without waiting keeps a CPU core busy for nothing; a bot should sleep until a message"
            " comes (or it is time to check stop)"
        ).format(seconds=SILENT_SPELL, n=busy)
        asked = time.time()
        h.say("alice", "!time")
        _check_answer(h.first_answer("alice"), asked)
        return ""


def _answers_once(run_bot: RunBot) -> str:
    with _harness(run_bot) as h:
        h.say("alice", "!time")
        h.first_answer("alice")
        more = h.answers("alice", QUIET)
        assert not more, _("one !time got {n} answers: {texts}").format(n=1 + len(more),
                                                                        texts=[m.text for m in more][:3])
        h.check_alive()
        return ""


def _ignores_other_lines(run_bot: RunBot) -> str:
    lines = ["hello", "what's the !time?", "!timer", "!time please", "time"]
    with _harness(run_bot) as h:
        for line in lines:
            h.say("alice", line)
        got = h.answers("alice", QUIET)
        assert not got, _(
            "answered ordinary lines: {texts}: a line that merely contains !time is not the command, the"
            " whole message is"
        ).format(texts=[m.text for m in got][:3])
        asked = time.time()
        h.say("alice", "  !time  ")
        try:
            _check_answer(h.first_answer("alice"), asked)
        except _NoAnswer as exc:
            raise AssertionError(
                _("'  !time  ' got {error}: people type spaces around a command by accident").format(error=exc)
            ) from None
        return ""


def _never_answers_itself(run_bot: RunBot) -> str:
    with _harness(run_bot, nick=OTHER_NICK) as h:  # not 'timebot': a bot knows its nick from bot.nick
        h.bot.say("!time")  # the bot's own line, echoed back to it by the server
        got = [m for m in h.answers("alice", QUIET) if m.text != "!time"]
        assert not got, _(
            "the bot, connected as {nick!r}, answered its own '!time' with {text!r}: the server sends every"
            " line back to its sender, the bot's own lines included (and a bot's nick is whatever it"
            " connected with)"
        ).format(nick=OTHER_NICK, text=got[0].text)
        h.check_alive()
        return ""


def _answers_whisper(run_bot: RunBot) -> str:
    with _harness(run_bot) as h:
        _one_whisper(h, "alice", "carol")
        _one_whisper(h, "carol", "alice")
        return ""


def _one_whisper(h: _Harness, asker: str, other: str) -> None:
    before = len(h.whispers)
    asked = time.time()
    h.people[asker].whisper(BOT, "!time")
    try:
        reply = h.first_answer(asker, PrivateMessage)
    except AssertionError as exc:
        in_room = h.answers(asker, 0.05)
        if in_room:
            raise AssertionError(
                _(
                    "the answer to a whisper went to the whole room ({text!r}): a private question"
                    " gets a private answer"
                ).format(text=in_room[0].text)
            ) from None
        if not isinstance(exc, _NoAnswer):
            raise
        elsewhere = [to for to in h.whispers[before:] if to != asker]
        if elsewhere:
            raise AssertionError(
                _(
                    "the bot whispered its answer to {to!r}, not to {asker} who asked: a whisper's sender is the"
                    " person to answer (its `to` is the bot itself)"
                ).format(to=elsewhere[0], asker=asker)
            ) from None
        raise AssertionError(
            _("{error}: a whisper arrives as a different kind of message than a room line").format(error=exc)
        ) from None
    assert reply.to == asker, _("the whisper went to {to!r}, not {asker}").format(to=reply.to, asker=asker)
    _check_answer(reply, asked)
    leaked = h.answers(other, QUIET) + h.answers(other, 0.05, PrivateMessage)
    assert not leaked, _("{other} saw the answer to {asker}'s whisper: {text!r}").format(
        other=other, asker=asker, text=leaked[0].text
    )


def _several_people(run_bot: RunBot) -> str:
    with _harness(run_bot) as h:
        asked = time.time()
        h.say("alice", "!time")
        h.say("carol", "!time")
        got = [h.first_answer("alice")] + h.answers("alice", QUIET)
        if len(got) < 2:
            h.check_alive()
        assert len(got) == 2, _("two people asked, {n} answer(s) came").format(n=len(got))
        for message in got:
            _check_answer(message, asked)
        return ""


def _stops_when_asked(run_bot: RunBot) -> str:
    with _harness(run_bot) as h:
        h.check_alive()
        h.stop.set()
        h.thread.join(STOP_GRACE)
        assert not h.thread.is_alive(), _(
            "run_bot was still running {seconds:g} s after stop was set: it has to notice stop"
            " even while nobody says anything"
        ).format(seconds=STOP_GRACE)
        h.check_errors()
        return ""


def _returns_when_server_goes(run_bot: RunBot) -> str:
    with _harness(run_bot) as h:
        h.check_alive()
        h.server.stop()
        h.thread.join(STOP_GRACE + 1.0)
        assert not h.thread.is_alive(), _(
            "run_bot kept running {seconds:g} s after the server went away: a closed connection"
            " is the end of the bot's work"
        ).format(seconds=STOP_GRACE + 1.0)
        h.check_errors(_(" when the server went away: a closed connection is a normal end for a bot, not an error"))
        return ""


CASES: list[tuple[str, Callable[[RunBot], str]]] = [
    # Names in English here (``only=`` matches them); printed in the current language.
    (N_("answers !time in its room"), _answers_time),
    (N_("answers exactly once"), _answers_once),
    (N_("ignores other lines, even ones containing !time"), _ignores_other_lines),
    (N_("never answers itself"), _never_answers_itself),
    (N_("answers a whisper with a whisper, to that person only"), _answers_whisper),
    (N_("answers each of two people"), _several_people),
    (N_("returns soon after stop is set"), _stops_when_asked),
    (N_("returns when the server goes away"), _returns_when_server_goes),
]


def check_bot(run_bot: RunBot, show: bool = True, only: str | None = None) -> Report:
    """Run ``run_bot(bot, stop)`` against a real server, one fresh server per case.

    Prints one PASS/FAIL line per case (unless ``show=False``) and returns the
    :class:`~chatlab.exercises.Report`; ``bool(report)`` is True when all pass.
    ``only="whisper"`` runs just the cases whose name contains that text
    (the English name, or the name in the current language).
    """
    chosen = [
        (_(name), (lambda body=body: body(run_bot)))
        for name, body in CASES
        if only is None or only in name or only in _(name)
    ]
    if not chosen:
        raise ValueError(_("no case name contains {only!r}").format(only=only))
    with _a_local_time_zone():
        return run_cases("check_bot", chosen, show=show, student_fns=[run_bot])


__all__ = ["check_bot", "BOT", "CASES"]
