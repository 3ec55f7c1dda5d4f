"""``HOST:PORT`` text and ``(host, port)`` tuples: the one :func:`parse_address` of the package.

The client's ``connect("host:port")``, a teacher's ``CHATLAB_SERVER=host:port`` and
the direct path's address in a FILE_ACCEPT all read addresses here, with one set of
rules and errors; :func:`format_address` writes them back (IPv6 in brackets).
Pure: no socket, no name lookup.
"""

from __future__ import annotations

import ipaddress
from typing import Union

__all__ = ["Address", "parse_address", "format_address", "LOOPBACK"]

Address = Union[tuple[str, int], str]
LOOPBACK = "127.0.0.1"  # the host of an address written without one, ":7777"


def parse_address(address: Address, *, default_host: str | None = LOOPBACK, ip_only: bool = False) -> tuple[str, int]:
    """``("host", port)``, ``"host:port"`` or ``"[::1]:port"`` -> ``(host, port)``.

    Spaces around the text are ignored; the brackets of an IPv6 literal are removed.

    Args:
        address: a tuple, or the text.
        default_host: the host of ``":port"``; ``None``: a host is required.
        ip_only: the host must be an IP address, never a name (the direct path connects
            to the address a peer sent, so it never looks up a name it was given).

    Raises:
        ValueError: not ``HOST:PORT``; no host where one is required; a name where
            ``ip_only`` wants an IP address; a port that is not from 1 to 65535.
    """
    if isinstance(address, str):
        host, port = _split(address.strip())
    else:
        host, port = address[0], int(address[1])
    if not host:
        if default_host is None:
            raise ValueError(f"expected HOST:PORT, got {address!r}: the host is missing")
        host = default_host
    if ip_only:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IP address (a peer's address is never looked up by name)") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"invalid port {port}: a port is a number from 1 to 65535")
    return host, port


def _split(text: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def format_address(address: tuple[str, int]) -> str:
    """``("127.0.0.1", 4000)`` -> ``"127.0.0.1:4000"``; IPv6 in brackets: ``"[::1]:4000"``."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
