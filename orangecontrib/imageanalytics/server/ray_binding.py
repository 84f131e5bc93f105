"""Where a Ray deployment of the server listens.

A local Ray instance (``--ray`` without ``--ray-address``) is one node, and
only the HTTP front needs to be reached from other computers; its GCS,
raylet and object manager, workers and replicas, agents and metrics servers
accept work without the server's API key, so they listen on loopback only,
whatever address the front listens on:

- Ray binds every server of a node to the node's address when that address
  is loopback, and to every interface otherwise.  It turns a loopback node
  address into the machine's network address unless multi-node clusters are
  off, the switch Ray uses on Windows and macOS; :data:`LOOPBACK_ENV` turns
  it off before Ray is imported (Ray's processes inherit it).
- Ray Serve 2.60 binds the gRPC server of each replica to every interface,
  with no setting for it; :func:`keep_replica_server_on_loopback` binds it to
  a loopback node's address instead.
- :func:`check_listeners` lists what the server's process tree listens on,
  once Ray has started and again once the replicas are up, and refuses to
  go on when anything but the HTTP port can be reached from elsewhere,
  unless told to accept it (``--ray-expose-ports``).  So a Ray version or a
  platform that binds elsewhere is found when the server starts.

A cluster was started by ``ray start`` on its machines; what a driver can
tell of it are the addresses Ray publishes, and :func:`warn_about_cluster`
names those that are public.

Ray is imported only inside functions.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from orangecontrib.imageanalytics.server.exposure import (
    Listener,
    cluster_warnings,
    exposed,
    host_of,
    is_loopback,
    listeners,
    machine_addresses,
    wildcard_warnings,
)

__all__ = [
    "EXPOSE_FLAG",
    "LOOPBACK_ENV",
    "ExposedPortsError",
    "check_listeners",
    "keep_ray_on_loopback",
    "keep_replica_server_on_loopback",
    "on_loopback",
    "warn_about_cluster",
]

log = logging.getLogger(__name__)

#: The environment of a local Ray instance bound to loopback: with
#: multi-node clusters off, Ray keeps a loopback node address (and so binds
#: its servers to loopback) instead of replacing it with the machine's
#: network address.  Ray reads it when it is imported.
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
#: The command-line flag that accepts Ray's ports beyond loopback.
EXPOSE_FLAG = "--ray-expose-ports"


class ExposedPortsError(RuntimeError):
    """Processes of a local Ray instance listen beyond loopback.

    Attributes
    ----------
    listeners
        What other computers could reach: :class:`~.exposure.Listener` s,
        or a description where the sockets were not listed.
    """

    def __init__(self, found: Iterable[Listener | str]) -> None:
        self.listeners = list(found)
        super().__init__(
            "Ray's processes would listen beyond this computer, where anyone "
            "who reaches them can run code on it: "
            + "; ".join(map(str, self.listeners))
            + f". Use a firewall and start with {EXPOSE_FLAG} to accept it.")


def on_loopback(address: str | None) -> bool:
    """Whether Ray is to be kept on loopback: for a local instance
    (``address`` is ``None``), and for a cluster on a loopback address
    (``ray start --head --node-ip-address 127.0.0.1``), which Ray would
    otherwise look for on the machine's network address."""
    return address is None or is_loopback(host_of(address))


def keep_ray_on_loopback() -> None:
    """Set :data:`LOOPBACK_ENV` in this process's environment; call it before
    ``ray`` is imported."""
    os.environ.update(LOOPBACK_ENV)


def check_listeners(http_port: int, *, accept: bool = False) -> None:
    """Refuse (or, with ``accept``, warn about) any socket of this process
    tree, a local Ray instance's included, that listens beyond loopback,
    except on ``http_port``.

    Raises
    ------
    ExposedPortsError
        If one does and ``accept`` is false.
    """
    # Ray, imported by now, ships psutil and puts it on the path
    import psutil

    try:
        found = exposed(listeners(), allowed_ports=(http_port,))
    except psutil.Error as error:
        log.warning("could not list the sockets Ray's processes listen on "
                    "(%s); they were bound to loopback", error)
        return
    if not found:
        return
    if not accept:
        raise ExposedPortsError(found)
    log.warning("%s: Ray's processes listen beyond this computer: %s",
                EXPOSE_FLAG, "; ".join(map(str, found)))


def keep_replica_server_on_loopback() -> bool:
    """On a loopback node, bind the gRPC server of this Serve replica to
    loopback; returns whether it will be.

    Ray Serve 2.60 starts a gRPC server in every replica (for calls between
    deployments, when they go over gRPC) on every interface, ``[::]:0``,
    whatever the node's address, and has no setting for it; it starts it
    after the replica's constructor, which calls this.  Where Serve has
    changed, nothing is done, and :func:`check_listeners` says what is
    exposed.
    """
    import ray.util

    try:
        from ray.serve._private import replica
        add_port = replica.add_port_to_grpc_server
    except (ImportError, AttributeError):
        return False
    node_ip = ray.util.get_node_ip_address()
    if not is_loopback(node_ip):
        return False
    if getattr(add_port, "loopback", False):
        return True
    host = f"[{node_ip}]" if ":" in node_ip else node_ip

    def add_port_on_loopback(server, address: str):
        if address.startswith("[::]:"):
            address = f"{host}:{address[len('[::]:'):]}"
        return add_port(server, address)

    add_port_on_loopback.loopback = True
    replica.add_port_to_grpc_server = add_port_on_loopback
    return True


def _port(address: str) -> int | None:
    tail = address.rsplit(":", 1)[-1].split("/", 1)[0]
    return int(tail) if tail.isdigit() else None


def _head_on_this_machine(gcs_address: str,
                          dashboard_url: str | None) -> list[str]:
    """:func:`~.exposure.wildcard_warnings` for the GCS and the dashboard,
    where this machine's sockets can be listed."""
    import psutil

    places = [("the GCS", host_of(gcs_address), _port(gcs_address))]
    if dashboard_url:
        places.append(("the dashboard", host_of(dashboard_url),
                       _port(dashboard_url)))
    places = [place for place in places if place[2] is not None]
    try:
        machine = machine_addresses()
        bound: dict[int, list[str]] = {}
        for connection in psutil.net_connections(kind="inet"):
            if connection.status == psutil.CONN_LISTEN:
                bound.setdefault(connection.laddr.port, []).append(
                    connection.laddr.ip)
    except psutil.Error:
        # e.g. sockets of other users' processes on macOS
        return []
    return wildcard_warnings(places, machine, bound)


def warn_about_cluster(dashboard_url: str | None) -> list[str]:
    """Log (and return) a warning for each public address of the Ray
    cluster this process joined (its GCS, its dashboard, its live nodes),
    and for its ports on this machine that listen on every interface of a
    machine with a public address."""
    import ray

    nodes = [node["NodeManagerAddress"] for node in ray.nodes()
             if node.get("Alive")]
    token = os.environ.get("RAY_AUTH_MODE", "").lower() == "token"
    gcs_address = ray.get_runtime_context().gcs_address
    warnings = cluster_warnings(gcs_address, dashboard_url, nodes,
                                token_auth=token)
    warnings += _head_on_this_machine(gcs_address, dashboard_url)
    for warning in warnings:
        log.warning("%s", warning)
    return warnings
