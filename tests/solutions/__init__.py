"""Reference solutions to the notebooks' exercises, for the tests only.

They are not part of the installed package (a student who installs chatlab
gets the checkers, not the answers); the instructor edition of the notebooks
holds the same answers between ``### BEGIN SOLUTION`` and ``### END SOLUTION``.
Tests import them as ``from solutions.framing_recv import recv_exact``
(pytest puts ``tests/`` on ``sys.path``, as ``tests/`` has no ``__init__.py``).

* :mod:`solutions.sockopt_select`: ``make_listener`` (notebook 01), ``serve_step`` (02)
* :mod:`solutions.framing_recv`: ``encode_frame``, ``decode_frames`` (03), ``recv_exact``, ``read_frame`` (04)
* :mod:`solutions.bot`: ``run_bot`` (05)
"""
