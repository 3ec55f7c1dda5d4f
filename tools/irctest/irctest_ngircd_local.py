"""irctest's own ngircd controller, kept on 127.0.0.1 (irctest binds to 0.0.0.0 by default)."""

from __future__ import annotations

import socket

from irctest.controllers.ngircd import NgircdController


def free_loopback_port() -> tuple[str, int]:
    """A free port on 127.0.0.1 (irctest's own helper binds "" and answers 0.0.0.0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return ("127.0.0.1", s.getsockname()[1])


class LocalNgircdController(NgircdController):
    def get_hostname_and_port(self) -> tuple[str, int]:
        with self._used_ports() as used_ports:
            while True:
                hostname, port = free_loopback_port()
                if (hostname, port) not in used_ports:
                    break
            used_ports.add((hostname, port))
            self._own_ports.add((hostname, port))
        return (hostname, port)


def get_irctest_controller_class() -> type[LocalNgircdController]:
    return LocalNgircdController
