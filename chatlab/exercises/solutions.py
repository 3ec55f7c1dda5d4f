"""Reference solutions to every notebook exercise, in one place.

Try the exercise first: the checkers tell you which case fails and why.
"""

from .solutions_framing_recv import decode_frames, encode_frame, read_frame, recv_exact
from .solutions_sockopt_select import make_listener, serve_step

__all__ = ["make_listener", "serve_step", "encode_frame", "decode_frames", "recv_exact", "read_frame"]
