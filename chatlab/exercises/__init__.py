"""Self-checking exercises for the notebooks.

Each checker takes the student's function, runs it against hostile conditions
(1-byte trickles, frames stuck together, a peer closing mid-message) and prints
one PASS or FAIL line per case, with a hint about the idea a failure misses::

    from chatlab.exercises import check_recv_exact
    check_recv_exact(my_recv_exact)

Every checker returns a :class:`Report` (and prints it, unless ``show=False``).  To grade,
assert the one attribute that means "every case passed"::

    report = check_recv_exact(recv_exact)
    assert report.all_passed, "see the FAIL lines above"

``report.all_passed`` is True only when there was at least one case and every one
passed; ``bool(report)`` and ``bool(report.passed)`` say the same, so ``assert report``
and ``assert report.passed`` are safe too.  ``report.passed`` is also the number of cases
that passed (``f"{report.passed}/{len(report.results)}"``), ``report.failed`` the names of
those that failed, and ``report.results`` one ``CaseResult(name, passed, detail)`` per case.

Run against an unsolved exercise (a body that raises ``NotImplementedError``),
a checker prints FAIL lines saying so and never raises, so a notebook runs top
to bottom before anything is solved.

The package holds the checkers only: the reference solutions are in the
instructor's notebooks (between ``### BEGIN SOLUTION`` and ``### END SOLUTION``)
and, for the test suite, in the repository's ``tests/solutions/``.
"""

from ._report import CaseResult, PassCount, Report, run_cases
from .bot import check_bot
from .broadcast import check_broadcast_handler
from .first_socket import check_echo_server
from .framing import check_framing
from .pinger import check_pinger
from .predictions import check_predictions
from .reconnect import check_upload_lines
from .recv import check_recv_exact
from .select_loop import check_select_step
from .sockopt import check_make_listener
from .strategy import check_chat_delay_prediction, check_send_strategy
from .tls_client import check_tls_client
from .writer import check_priority_writer

__all__ = [
    "Report",
    "CaseResult",
    "PassCount",
    "run_cases",
    "check_echo_server",  # notebook 00
    "check_predictions",  # notebook 01
    "check_make_listener",  # notebook 01
    "check_select_step",
    "check_framing",
    "check_recv_exact",  # notebook 04
    "check_bot",  # notebook 05
    "check_send_strategy",  # notebook 06
    "check_chat_delay_prediction",  # notebook 06
    "check_priority_writer",  # notebook 07
    "check_broadcast_handler",  # notebook 08
    "check_upload_lines",  # notebook 09
    "check_tls_client",  # notebook 11
    "check_pinger",  # notebook 10
]
