"""The test session cannot reach the network (conftest.py installs the guard)."""
import socket

import httpx
import network_guard
import pytest

from orangecontrib.imageanalytics.embedders.registry import PUBLIC_SERVER_URL


@pytest.fixture
def recorded():
    yield network_guard.attempts
    # these attempts were made on purpose; conftest fails tests for others
    network_guard.attempts.clear()


def test_public_server_is_out_of_reach(recorded):
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"{PUBLIC_SERVER_URL}/image/inception-v3", content=b"x",
                   timeout=5)
    assert recorded == [("lookup", PUBLIC_SERVER_URL.split("//")[1])]


def test_addresses_outside_are_refused(recorded):
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("192.0.2.1", 80))     # TEST-NET-1, never routed
    with socket.socket() as sock:
        assert sock.connect_ex(("192.0.2.1", 80)) != 0
    assert [kind for kind, _ in recorded] == ["connect", "connect"]


def test_loopback_stays_reachable(recorded):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
    assert socket.getaddrinfo("localhost", 80)
    assert recorded == []
