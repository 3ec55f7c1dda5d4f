"""Self-checking exercises for the notebooks.

Each checker takes the student's function, runs it against hostile conditions
(1-byte trickles, frames stuck together, a peer closing mid-message) and prints
which cases pass::

    from chatlab.exercises import check_recv_exact
    check_recv_exact(my_recv_exact)

Reference solutions live in :mod:`chatlab.exercises.solutions`, outside the
notebooks, so a student sees them only on purpose.
"""

from ._report import Report, run_cases
from .first_socket import check_echo_server
from .framing import check_framing
from .recv import check_recv_exact
from .select_loop import check_select_step
from .sockopt import check_make_listener
from .strategy import check_chat_delay_prediction, check_send_strategy
from .writer import check_priority_writer

__all__ = ["Report", "run_cases", "check_echo_server", "check_make_listener", "check_select_step", "check_framing", "check_recv_exact", "check_send_strategy", "check_chat_delay_prediction", "check_priority_writer"]
