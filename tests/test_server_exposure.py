"""What of the server other computers can reach: addresses, the listening
sockets of a process tree, and warnings about a Ray cluster's public
addresses."""
import socket
import subprocess
import sys

import pytest

from orangecontrib.imageanalytics.server.exposure import (
    Listener,
    cluster_warnings,
    exposed,
    host_of,
    is_loopback,
    is_public,
    listeners,
    machine_addresses,
    wildcard_warnings,
)


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.0.1", "::1", "[::1]", "::ffff:127.0.0.1",
    "localhost"])
def test_loopback_addresses(address):
    assert is_loopback(address)


@pytest.mark.parametrize("address", [
    "0.0.0.0", "::", "192.168.1.5", "10.0.0.1", "8.8.8.8",
    "::ffff:192.168.1.5", "fe80::1%eth0", "head-node"])
def test_addresses_beyond_loopback(address):
    assert not is_loopback(address)


@pytest.mark.parametrize("address, public", [
    ("8.8.8.8", True), ("2001:4860:4860::8888", True),
    # every interface, a public one among them wherever there is one
    ("0.0.0.0", True), ("::", True),
    ("10.0.0.1", False), ("192.168.1.2", False), ("172.16.5.4", False),
    ("fd00::2", False), ("127.0.0.1", False), ("localhost", False),
    ("::ffff:10.0.0.1", False),
    # a name is not looked up
    ("head.example.org", None)])
def test_public_addresses(address, public):
    assert is_public(address) is public


@pytest.mark.parametrize("address, host", [
    ("10.0.0.1:6379", "10.0.0.1"), ("[fd00::2]:6379", "fd00::2"),
    ("http://8.8.8.8:8265/#/jobs", "8.8.8.8"), ("head:6379", "head"),
    ("fd00::2", "fd00::2"), ("127.0.0.1", "127.0.0.1")])
def test_host_of_an_address(address, host):
    assert host_of(address) == host


def test_exposed_leaves_out_loopback_and_the_http_port():
    found = [Listener("raylet", 3, "::ffff:127.0.0.1", 40000),
             Listener("gcs_server", 1, "::", 6379),
             Listener("ray::ProxyActor", 2, "0.0.0.0", 8000),
             Listener("ray::DashboardAgent", 4, "192.168.1.5", 52365)]
    assert exposed(found, allowed_ports=(8000,)) == [
        Listener("gcs_server", 1, "::", 6379),
        Listener("ray::DashboardAgent", 4, "192.168.1.5", 52365)]
    assert exposed(found[:1]) == []
    assert str(found[1]) == "gcs_server (pid 1) on [::]:6379"
    assert str(found[2]) == "ray::ProxyActor (pid 2) on 0.0.0.0:8000"


# listens on loopback until its input closes
_LISTENING_CHILD = """\
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
print(s.getsockname()[1], flush=True)
sys.stdin.read()
"""


def test_listeners_of_a_process_and_its_children():
    child = subprocess.Popen(
        [sys.executable, "-c", _LISTENING_CHILD],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        child_port = int(child.stdout.readline())
        with socket.socket() as tcp, \
                socket.socket(type=socket.SOCK_DGRAM) as udp, \
                socket.socket() as client_side:
            tcp.bind(("127.0.0.1", 0))
            tcp.listen()
            udp.bind(("127.0.0.1", 0))
            # a connection is not a listener
            client_side.connect(tcp.getsockname())
            found = {(listener.pid, listener.address, listener.port)
                     for listener in listeners()}
            assert (child.pid, "127.0.0.1", child_port) in found
            assert {(child.pid, "127.0.0.1", child_port)} == \
                {(listener.pid, listener.address, listener.port)
                 for listener in listeners(child.pid)}
            me = {port for pid, _, port in found if pid != child.pid}
            assert tcp.getsockname()[1] in me
            assert udp.getsockname()[1] in me
            assert client_side.getsockname()[1] not in me
    finally:
        child.stdin.close()
        child.wait(30)


def test_no_warnings_for_a_cluster_on_a_private_network():
    assert cluster_warnings("10.0.0.1:6379", "127.0.0.1:8265",
                            ["10.0.0.1", "10.0.0.2"], token_auth=False) == []
    assert cluster_warnings("head:6379", "", ["head"], token_auth=False) == []


def test_warnings_name_each_public_address():
    warnings = cluster_warnings("8.8.8.8:6379", "http://8.8.8.8:8265",
                                ["8.8.8.8", "10.0.0.2", "1.1.1.1"],
                                token_auth=False)
    assert len(warnings) == 4
    gcs, dashboard, node, other = warnings
    assert "GCS" in gcs and "8.8.8.8" in gcs
    assert "dashboard" in dashboard and "8.8.8.8" in dashboard
    assert "1.1.1.1" in node and "8.8.8.8" in other
    assert all("RAY_AUTH_MODE=token" in warning and "firewall" in warning
               for warning in warnings)
    [gcs] = cluster_warnings("8.8.8.8:6379", None, [], token_auth=True)
    assert "token authentication is on" in gcs
    assert "RAY_AUTH_MODE" not in gcs


def test_machine_addresses_include_loopback():
    addresses = machine_addresses()
    assert "127.0.0.1" in addresses or "::1" in addresses


def test_wildcard_warnings_for_a_head_node_with_a_public_address():
    places = [("the GCS", "10.0.0.1", 6379), ("the dashboard", "127.0.0.1",
                                               8265)]
    machine = ["127.0.0.1", "::1", "10.0.0.1", "8.8.8.8",
               "fe80::1%eth0"]
    bound = {6379: ["::"], 8265: ["127.0.0.1"]}
    [gcs] = wildcard_warnings(places, machine, bound)
    assert "GCS" in gcs and "6379" in gcs and "8.8.8.8" in gcs
    assert "10.0.0.1" in gcs and "fe80" not in gcs
    bound[8265] = ["0.0.0.0"]
    assert len(wildcard_warnings(places, machine, bound)) == 2
    # bound to the announced address only
    assert wildcard_warnings(places, machine,
                             {6379: ["10.0.0.1"], 8265: ["127.0.0.1"]}) == []
    # no public address on this machine
    assert wildcard_warnings(places, machine[:3], bound) == []
    # the head node is another machine
    assert wildcard_warnings([("the GCS", "10.0.0.9", 6379)], machine,
                             bound) == []
