"""Keep the test run off the network: only loopback addresses are reachable.

:func:`install` wraps socket connections and name lookups for the whole
test session.  A connection to any other address, or a lookup of a name that
is not ``localhost``, fails with an ``OSError`` (as an unreachable network
would) and is recorded in :data:`attempts`; ``conftest.py`` fails the test
that made it, so a test that would have reached the network cannot pass.
Child processes (servers that tests start) are not covered.
"""
from __future__ import annotations

import ipaddress
import socket

#: ``(kind, address)`` of every blocked attempt since the last clear.
attempts: list[tuple[str, object]] = []

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_installed = False


def _is_loopback_host(host) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).strip("[]").lower()
    if host in _LOCAL_NAMES or host == "":
        return True
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    # connecting to the unspecified address reaches this computer
    return address.is_loopback or address.is_unspecified


def _is_numeric(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    try:
        ipaddress.ip_address(str(host).strip("[]").split("%")[0])
    except ValueError:
        return False
    return True


def install() -> None:
    """Wrap ``socket.socket.connect``, ``connect_ex`` and
    ``socket.getaddrinfo`` (once per process)."""
    global _installed
    if _installed:
        return
    _installed = True
    connect = socket.socket.connect
    connect_ex = socket.socket.connect_ex
    getaddrinfo = socket.getaddrinfo

    def allowed(sock, address) -> bool:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return True     # Unix sockets and the like stay on this computer
        return _is_loopback_host(address[0])

    def guarded_connect(self, address):
        if not allowed(self, address):
            attempts.append(("connect", address))
            raise ConnectionRefusedError(
                f"tests may not reach the network (connect to {address})")
        return connect(self, address)

    def guarded_connect_ex(self, address):
        if not allowed(self, address):
            attempts.append(("connect", address))
            return 111  # ECONNREFUSED
        return connect_ex(self, address)

    def guarded_getaddrinfo(host, *args, **kwargs):
        # numeric addresses resolve without the network; connect decides
        if not _is_loopback_host(host) and not _is_numeric(host):
            attempts.append(("lookup", host))
            raise socket.gaierror(
                socket.EAI_NONAME,
                f"tests may not reach the network (lookup of {host})")
        return getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = guarded_connect
    socket.socket.connect_ex = guarded_connect_ex
    socket.getaddrinfo = guarded_getaddrinfo
