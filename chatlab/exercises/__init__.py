"""Self-checking exercises for the notebooks.

Each checker takes the student's function, runs it against hostile conditions
(1-byte trickles, frames stuck together, a peer closing mid-message) and prints
one PASS or FAIL line per case, with a hint about the idea a failure misses::

    from chatlab.exercises import check_recv_exact
    check_recv_exact(my_recv_exact)

Run against an unsolved exercise (a body that raises ``NotImplementedError``),
a checker prints FAIL lines saying so and never raises, so a notebook runs top
to bottom before anything is solved.

The package holds the checkers only: the reference solutions are in the
instructor's notebooks (between ``### BEGIN SOLUTION`` and ``### END SOLUTION``)
and, for the test suite, in the repository's ``tests/solutions/``.
"""

from ._report import Report, run_cases
from .bot import check_bot
from .broadcast import check_broadcast_handler
from .first_socket import check_echo_server
from .framing import check_framing
from .pinger import check_pinger
from .reconnect import check_upload_lines
from .recv import check_recv_exact
from .select_loop import check_select_step
from .sockopt import check_make_listener
from .strategy import check_chat_delay_prediction, check_send_strategy
from .writer import check_priority_writer

__all__ = [
    "Report",
    "run_cases",
    "check_echo_server",  # notebook 00
    "check_make_listener",
    "check_select_step",
    "check_framing",
    "check_recv_exact",  # notebook 04
    "check_bot",  # notebook 05
    "check_send_strategy",  # notebook 06
    "check_chat_delay_prediction",  # notebook 06
    "check_priority_writer",  # notebook 07
    "check_broadcast_handler",  # notebook 08
    "check_upload_lines",  # notebook 09
    "check_pinger",  # notebook 10
]
