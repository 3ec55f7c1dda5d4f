"""irctest's controller for chatlab: runs ``python -m chatlab server`` on 127.0.0.1.

Used by ``tests/io/test_irctest.py`` (and by hand, from a clone of progval/irctest)::

    PYTHONPATH=/path/to/chatlab/tools/irctest:/path/to/chatlab python -m pytest \\
        --controller irctest_chatlab -m "(RFC1459 or RFC2812) and not deprecated and not strict \\
        and not IRCv3 and not services"

Flood control is turned off (irctest sends bursts faster than a person types: with it on,
a test only waits longer, plus one flood NOTICE it does not expect), and the operator
login irctest uses (``operuser`` / ``operpassword``) is given with ``--oper``.  chatlab has
no server password, so irctest's PASS tests are skipped, not failed.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from irctest.basecontrollers import BaseServerController, DirectoryBasedController
from irctest.runner import NotImplementedByController

REPOSITORY = Path(__file__).resolve().parents[2]  # chatlab's checkout: the server that is tested


def free_loopback_port() -> tuple[str, int]:
    """A free port on 127.0.0.1 (irctest's own helper binds "" and answers 0.0.0.0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return ("127.0.0.1", s.getsockname()[1])


class ChatlabController(BaseServerController, DirectoryBasedController):
    software_name = "chatlab"
    supported_sasl_mechanisms: set[str] = set()
    supports_sts = False

    def get_hostname_and_port(self) -> tuple[str, int]:
        with self._used_ports() as used_ports:
            while True:
                hostname, port = free_loopback_port()
                if (hostname, port) not in used_ports:
                    break
            used_ports.add((hostname, port))
            self._own_ports.add((hostname, port))
        return (hostname, port)

    def run(
        self,
        hostname: str,
        port: int,
        *,
        password: str | None,
        ssl: bool,
        run_services: bool,
        faketime: str | None,
        websocket_hostname: str | None,
        websocket_port: int | None,
    ) -> None:
        if password is not None:
            raise NotImplementedByController("PASS (chatlab has no server password)")
        if ssl:
            raise NotImplementedByController("TLS")
        if websocket_hostname is not None or websocket_port is not None:
            raise NotImplementedByController("Websocket")
        if run_services:
            raise NotImplementedByController("services")
        assert self.proc is None
        self.port, self.hostname = port, hostname
        self.create_config()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPOSITORY), os.environ.get("PYTHONPATH", "")]))
        self.proc = self.execute(
            [sys.executable, "-m", "chatlab", "server", "--host", hostname, "--port", str(port), "--no-flood-limit",
             "--oper", "operuser=operpassword"],
            env=env,
        )


def get_irctest_controller_class() -> type[ChatlabController]:
    return ChatlabController
