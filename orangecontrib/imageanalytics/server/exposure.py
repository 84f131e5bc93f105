"""What of the server other computers can reach: the listening sockets of
its processes, and the addresses of a Ray cluster it joins.

A local Ray instance started by ``orange-embedding-server --ray`` is made of
many processes (the GCS, the raylet with its object manager, the dashboard
and its agent, the runtime-env agent, Serve's controller, proxy and
replicas), each with its own listening ports, and Ray's control ports run
whatever code they are sent.  The server binds them to loopback
(:mod:`~.ray_serve`), then lists what its process tree listens on with
:func:`listeners` to prove it, so that a Ray version or a platform that
binds elsewhere is caught when the server starts rather than by an attacker.

A cluster's processes were started elsewhere (``ray start``); what can be
told from a driver are the addresses Ray publishes: the GCS's, the
dashboard's and each node's.  :func:`cluster_warnings` names those that are
public.  Ray announces one address but may listen on every interface; where
the head node is this machine, :func:`wildcard_warnings` names the ports
that listen on every interface of a machine that has a public address.
"""
from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "Listener",
    "cluster_warnings",
    "exposed",
    "host_of",
    "is_loopback",
    "is_public",
    "listeners",
    "machine_addresses",
    "wildcard_warnings",
]


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket, or a UDP socket open to any sender."""
    process: str
    pid: int
    address: str
    port: int

    def __str__(self) -> str:
        address = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.process} (pid {self.pid}) on {address}:{self.port}"


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        # what a dual-stack socket shows for an IPv4 address
        return ip.ipv4_mapped
    return ip


def is_loopback(address: str) -> bool:
    """Whether only this computer can reach ``address`` (an IP address, or
    ``localhost``); the unspecified address (0.0.0.0, ::) is every
    interface, so not loopback."""
    if address.strip("[]").lower() == "localhost":
        return True
    ip = _ip(address)
    return ip is not None and ip.is_loopback


def is_public(address: str) -> bool | None:
    """Whether ``address`` can be reached from the internet: a global
    address, or the unspecified one (every interface, whichever of them is
    public); ``None`` for a name, which cannot be told without looking it
    up."""
    if address.strip("[]").lower() == "localhost":
        return False
    ip = _ip(address)
    if ip is None:
        return None
    return ip.is_global or ip.is_unspecified


def host_of(address: str) -> str:
    """The host of ``host:port``, ``[v6]:port`` or a URL such as
    ``http://host:port/path``."""
    address = address.split("://", 1)[-1].split("/", 1)[0]
    if address.startswith("["):
        return address[1:].split("]", 1)[0]
    if address.count(":") == 1:
        return address.split(":", 1)[0]
    return address


def listeners(pid: int | None = None) -> list[Listener]:
    """The listening sockets of a process (this one by default) and of all
    its descendants.

    Processes that end while they are listed are left out.

    Raises
    ------
    psutil.AccessDenied
        If the sockets of one of the processes cannot be read.
    """
    import psutil

    root = psutil.Process(pid)
    found = []
    for process in (root, *root.children(recursive=True)):
        try:
            name = process.name()
            connections = process.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        for connection in connections:
            if connection.status == psutil.CONN_LISTEN or (
                    connection.type == socket.SOCK_DGRAM
                    and not connection.raddr):
                found.append(Listener(name, process.pid, connection.laddr.ip,
                                      connection.laddr.port))
    return found


def exposed(found: Iterable[Listener],
            allowed_ports: Collection[int] = ()) -> list[Listener]:
    """The listeners beyond loopback, except those on ``allowed_ports``
    (the HTTP port the user chose), sorted."""
    return sorted((listener for listener in found
                   if not is_loopback(listener.address)
                   and listener.port not in allowed_ports),
                  key=lambda listener: (listener.process, listener.port))


def cluster_warnings(gcs_address: str, dashboard_url: str | None,
                     node_addresses: Iterable[str], *,
                     token_auth: bool) -> list[str]:
    """Warnings about a Ray cluster whose control ports are public.

    Parameters
    ----------
    gcs_address
        The GCS's ``host:port``.
    dashboard_url
        Where the dashboard says it is (``host:port``), or ``None`` / ``""``
        without a dashboard.
    node_addresses
        The address of each node; its raylet, object manager and workers
        listen there.
    token_auth
        Whether Ray's token authentication is on (``RAY_AUTH_MODE=token``).

    Returns
    -------
    list of str
        One message per public address; none when every address is
        loopback or private (or a name, which is not looked up).
    """
    places = [("its GCS (control store)", host_of(gcs_address))]
    if dashboard_url:
        places.append(("its dashboard (jobs API)", host_of(dashboard_url)))
    places += [("a node's raylet and workers", address)
               for address in sorted(set(node_addresses))]
    guard = ("Ray's token authentication is on, but the token travels "
             "unencrypted" if token_auth else
             "without Ray's token authentication (RAY_AUTH_MODE=token) "
             "anyone who reaches it can run code on the cluster")
    return [f"the Ray cluster has {what} on the public address {address}: "
            f"{guard}; keep Ray's ports behind a firewall, on a private "
            "network"
            for what, address in places if is_public(address)]


def machine_addresses() -> list[str]:
    """The IP addresses of this machine's network interfaces."""
    import psutil

    return [address.address
            for addresses in psutil.net_if_addrs().values()
            for address in addresses
            if address.family in (socket.AF_INET, socket.AF_INET6)]


def wildcard_warnings(places: Iterable[tuple[str, str, int]],
                      machine: Collection[str],
                      bound: Mapping[int, Collection[str]]) -> list[str]:
    """Warnings about ports of this machine that Ray announces on one
    address but that listen on every interface, a public one among them.

    Parameters
    ----------
    places
        ``(what, host, port)`` as Ray announces them.
    machine
        This machine's addresses (:func:`machine_addresses`).
    bound
        For each port, the addresses that listen on it on this machine.

    Returns
    -------
    list of str
        A warning for each place on this machine (its host is one of
        ``machine``) that listens on the unspecified address, when
        ``machine`` has a public address; none otherwise.
    """
    public = sorted({address.split("%")[0] for address in machine
                     if is_public(address) and not is_loopback(address)})
    if not public:
        return []
    here = {address.split("%")[0] for address in machine}
    return [f"{what} of the Ray cluster listens on every interface of this "
            f"machine (port {port}), which has the public address "
            f"{', '.join(public)}, although Ray announces {host}; keep the "
            "port behind a firewall"
            for what, host, port in places
            if host in here and any(_ip(address) is not None
                                    and _ip(address).is_unspecified
                                    for address in bound.get(port, ()))]
