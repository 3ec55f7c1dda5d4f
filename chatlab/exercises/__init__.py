"""Self-checking exercises for the notebooks.

Each checker takes the student's function, runs it against hostile conditions
(1-byte trickles, frames stuck together, a peer closing mid-message) and prints
which cases pass.  Reference solutions live in :mod:`chatlab.exercises.solutions`.
"""

from ._report import Report, run_cases

__all__ = ["Report", "run_cases"]
