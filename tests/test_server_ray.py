"""The server on Ray Serve: replica planning and the HTTP front's backend
without Ray, then ``orange-embedding-server --ray`` on local Ray instances
(127.0.0.1, 2 CPUs, bounded load), driven by Orange's own client and ours.

The Ray tests need the ``ray`` extra; without it they are skipped."""
import asyncio
import ipaddress
import os
import pickle
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import httpx
import numpy as np
import psutil
import pytest
from server_helpers import cosine, model_input_jpeg, orange_client

from orangecontrib.imageanalytics.embedders.local import LocalEmbedder
from orangecontrib.imageanalytics.server import ray_binding, ray_serve
from orangecontrib.imageanalytics.server.app import RequestError, create_app
from orangecontrib.imageanalytics.server.cli import (
    build_parser,
    ray_options_from_args,
)
from orangecontrib.imageanalytics.server.config import ServerConfig
from orangecontrib.imageanalytics.server.exposure import Listener
from orangecontrib.imageanalytics.server.ray_binding import ExposedPortsError
from orangecontrib.imageanalytics.server.ray_serve import (
    RayBackend,
    RayOptions,
    plan_replicas,
    replica_config,
)

try:
    import ray.serve  # noqa: F401
    HAVE_RAY = True
except ImportError:
    HAVE_RAY = False

needs_ray = pytest.mark.skipif(
    not HAVE_RAY, reason='Ray Serve is not installed (pip install '
                         '"Orange3-ImageAnalytics[ray]")')

API_KEY = "ray-test-key"


# --- without Ray ------------------------------------------------------------

def test_plan_one_replica_per_gpu():
    plan = plan_replicas(ServerConfig(device="auto"), RayOptions(),
                         {"CPU": 32, "GPU": 4})
    assert (plan.device, plan.gpus, plan.cpus) == ("cuda", 1, 8)
    assert (plan.min_replicas, plan.max_replicas) == (1, 4)
    assert plan.decode_threads == 8
    options = plan.deployment_options(RayOptions(target_ongoing_requests=16))
    assert options["ray_actor_options"] == {"num_cpus": 8, "num_gpus": 1}
    assert options["autoscaling_config"]["max_replicas"] == 4
    assert options["autoscaling_config"]["target_ongoing_requests"] == 16
    assert "num_replicas" not in options


def test_plan_groups_of_cpu_cores_without_gpus():
    plan = plan_replicas(ServerConfig(device="auto"), RayOptions(),
                         {"CPU": 16})
    assert (plan.device, plan.gpus, plan.cpus) == ("cpu", 0, 4)
    assert plan.max_replicas == 4
    # a CPU device keeps replicas off the GPUs of a cluster
    plan = plan_replicas(ServerConfig(device="cpu", decode_threads=3),
                         RayOptions(replica_cpus=2, min_replicas=2,
                                    max_replicas=2), {"CPU": 8, "GPU": 2})
    assert (plan.device, plan.gpus, plan.decode_threads) == ("cpu", 0, 3)
    options = plan.deployment_options(RayOptions())
    assert options["num_replicas"] == 2
    assert "autoscaling_config" not in options


def test_plan_refuses_what_the_cluster_lacks():
    with pytest.raises(ValueError, match="needs GPUs"):
        plan_replicas(ServerConfig(device="cuda"), RayOptions(), {"CPU": 8})
    with pytest.raises(ValueError, match="needs 16 CPUs"):
        plan_replicas(ServerConfig(device="cpu"),
                      RayOptions(replica_cpus=16), {"CPU": 8})
    with pytest.raises(ValueError, match="ingress"):
        RayOptions(ingress="haproxy")


def test_replica_config_drops_the_key_for_the_front():
    config = ServerConfig(api_key="secret", device="auto")
    plan = plan_replicas(config, RayOptions(), {"CPU": 2})
    assert replica_config(config, plan, keep_api_key=False).api_key is None
    kept = replica_config(config, plan, keep_api_key=True)
    assert (kept.api_key, kept.device, kept.decode_threads) == \
        ("secret", "cpu", 2)


def test_command_line_ray_options():
    args = build_parser().parse_args(
        ["--ray", "--ray-address", "10.0.0.1:6379", "--ray-ingress", "proxy",
         "--min-replicas", "0", "--max-replicas", "8", "--replica-gpus",
         "0.5", "--target-ongoing-requests", "32"])
    options = ray_options_from_args(args)
    assert options == RayOptions(address="10.0.0.1:6379", ingress="proxy",
                                 min_replicas=0, max_replicas=8,
                                 replica_gpus=0.5, target_ongoing_requests=32)
    assert not options.expose_ports
    args = build_parser().parse_args(["--ray", "--ray-expose-ports"])
    assert ray_options_from_args(args).expose_ports


def test_command_line_refuses_fronts_for_the_proxy(capsys):
    from orangecontrib.imageanalytics.server.cli import main

    assert main(["--ray", "--ray-ingress", "proxy", "--workers", "2"]) == 2
    assert "--workers" in capsys.readouterr().err


def _unset_environment(monkeypatch, *names):
    # set first, so that monkeypatch removes what the code under test sets
    for name in names:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def test_command_line_without_ray_says_what_to_install(monkeypatch, capsys):
    from orangecontrib.imageanalytics.server.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.serve", None)
    _unset_environment(monkeypatch, *ray_binding.LOOPBACK_ENV)
    assert main(["--ray", "--device", "cpu"]) == 2
    assert 'pip install "Orange3-ImageAnalytics[ray]"' in \
        capsys.readouterr().err


def test_command_line_keeps_a_local_instance_on_loopback(monkeypatch,
                                                         capsys):
    """Ray reads the switch when it is imported: main sets it before, for a
    local instance only, and refuses to go on when Ray's ports are
    exposed anyway."""
    from orangecontrib.imageanalytics.server.cli import main

    [(name, value)] = ray_binding.LOOPBACK_ENV.items()
    calls = []

    def serve_on_ray(config, options, uvicorn_options, workers):
        calls.append((options, os.environ.get(name)))
        raise ExposedPortsError(
            [Listener("gcs_server", 7, "0.0.0.0", 6379)])

    monkeypatch.setattr(ray_serve, "serve_on_ray", serve_on_ray)
    _unset_environment(monkeypatch, name)
    assert main(["--ray", "--ray-address", "10.0.0.1:6379"]) == 2
    assert calls.pop() == (RayOptions(address="10.0.0.1:6379"), None)
    message = capsys.readouterr().err
    assert "gcs_server (pid 7) on 0.0.0.0:6379" in message
    assert "--ray-expose-ports" in message
    assert main(["--ray"]) == 2
    assert calls.pop() == (RayOptions(), value)
    # a cluster on loopback, which Ray would look for elsewhere without it
    _unset_environment(monkeypatch, name)
    assert main(["--ray", "--ray-address", "127.0.0.1:6379"]) == 2
    assert calls.pop() == (RayOptions(address="127.0.0.1:6379"), value)


def test_exposed_listeners_are_refused_unless_accepted(monkeypatch, caplog):
    found = [Listener("raylet", 3, "127.0.0.1", 40000),
             Listener("gcs_server", 1, "::", 6379),
             Listener("ray::ProxyActor", 2, "0.0.0.0", 8000)]
    monkeypatch.setattr(ray_binding, "listeners", lambda: found)
    with pytest.raises(ExposedPortsError) as raised:
        ray_binding.check_listeners(8000)
    assert raised.value.listeners == [found[1]]
    message = str(raised.value)
    assert "gcs_server (pid 1) on [::]:6379" in message
    assert "ProxyActor" not in message and "raylet" not in message
    assert "--ray-expose-ports" in message
    with caplog.at_level("WARNING"):
        ray_binding.check_listeners(8000, accept=True)
    assert "gcs_server (pid 1) on [::]:6379" in caplog.text
    # the HTTP port alone is the user's choice
    monkeypatch.setattr(ray_binding, "listeners", lambda: found[2:])
    ray_binding.check_listeners(8000)


@needs_ray
@pytest.mark.parametrize("node_ip, bound", [
    ("127.0.0.1", "127.0.0.1:0"), ("10.0.0.5", "[::]:0")])
def test_replica_grpc_server_on_a_loopback_node(monkeypatch, node_ip, bound):
    import ray.util
    from ray.serve._private import replica

    added = []
    monkeypatch.setattr(replica, "add_port_to_grpc_server",
                        lambda server, address: added.append(address) or 1)
    monkeypatch.setattr(ray.util, "get_node_ip_address", lambda: node_ip)
    assert ray_binding.keep_replica_server_on_loopback() == \
        (node_ip == "127.0.0.1")
    # as Serve's replica does after the constructor
    assert replica.add_port_to_grpc_server(object(), "[::]:0") == 1
    assert added == [bound]


@needs_ray
def test_joining_a_cluster_on_public_addresses_warns(monkeypatch, caplog):
    import ray

    class Context:
        dashboard_url = "8.8.4.4:8265"
        gcs_address = "8.8.4.4:6379"

    joined = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: joined.append(kwargs)
                        or Context())
    monkeypatch.setattr(ray, "get_runtime_context", Context)
    monkeypatch.setattr(ray, "nodes", lambda: [
        {"NodeManagerAddress": "8.8.4.4", "Alive": True},
        {"NodeManagerAddress": "10.0.0.2", "Alive": True},
        {"NodeManagerAddress": "1.1.1.1", "Alive": False}])
    _unset_environment(monkeypatch, "RAY_AUTH_MODE")
    with caplog.at_level("WARNING"):
        assert ray_serve.connect(RayOptions(address="8.8.4.4:6379")) is False
    assert joined == [{"address": "8.8.4.4:6379"}]
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 3, warnings
    assert all("8.8.4.4" in warning and "RAY_AUTH_MODE=token" in warning
               for warning in warnings)
    assert not any("1.1.1.1" in warning for warning in warnings)


@needs_ray
def test_a_head_node_here_listening_everywhere_warns(monkeypatch, caplog):
    """Ray announces a private address, but its GCS listens on every
    interface of this machine, which also has a public one."""
    import ray

    class Context:
        gcs_address = "10.0.0.1:6379"

    def listening(ip, port):
        return SimpleNamespace(laddr=SimpleNamespace(ip=ip, port=port),
                               raddr=(), status=psutil.CONN_LISTEN, pid=None)

    monkeypatch.setattr(ray, "get_runtime_context", Context)
    monkeypatch.setattr(ray, "nodes", lambda: [
        {"NodeManagerAddress": "10.0.0.1", "Alive": True}])
    monkeypatch.setattr(ray_binding, "machine_addresses",
                        lambda: ["127.0.0.1", "10.0.0.1", "8.8.8.8"])
    monkeypatch.setattr(psutil, "net_connections", lambda kind: [
        listening("::", 6379), listening("127.0.0.1", 8265)])
    with caplog.at_level("WARNING"):
        warnings = ray_binding.warn_about_cluster("127.0.0.1:8265")
    assert len(warnings) == 1, warnings
    assert "GCS" in warnings[0] and "8.8.8.8" in warnings[0]
    assert warnings[0] in caplog.text


def test_front_on_a_cluster_requires_the_api_key():
    from starlette.testclient import TestClient

    config = ServerConfig(api_key=API_KEY)
    replica = _Replica()
    backend = RayBackend(config, _FakeHandle(replica))
    image = model_input_jpeg("squeezenet")
    with TestClient(create_app(config, backend=backend)) as client:
        for headers in ({}, {"X-API-Key": "wrong"}):
            assert client.get("/models", headers=headers).status_code == 401
            reply = client.post("/image/squeezenet", content=image,
                                headers=headers)
            assert reply.status_code == 401
        assert client.get("/health").status_code == 200
        assert replica.calls == []
        reply = client.get("/models", headers={"X-API-Key": API_KEY})
        assert reply.status_code == 200
        reply = client.post("/image/squeezenet", content=image,
                            headers={"X-API-Key": API_KEY})
        assert reply.status_code != 401
        assert replica.calls == [("squeezenet", [image])]


def test_request_error_survives_pickling():
    """Replicas return refusals across processes."""
    error = RequestError(503, "overloaded", "busy",
                         headers={"Retry-After": "3"})
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.status, copy.code, copy.message, copy.skip, copy.headers) \
        == (503, "overloaded", "busy", False, {"Retry-After": "3"})
    assert b'"embedding"' not in copy.response().body


class _Method:
    def __init__(self, function):
        self._function = function

    def remote(self, *args):
        return self._function(*args)


class _FakeHandle:
    """What the front needs of a deployment handle: ``handle.m.remote(...)``
    returning an awaitable."""

    def __init__(self, replica):
        self._replica = replica

    def __getattr__(self, name):
        return _Method(getattr(self._replica, name))


class _Replica:
    def __init__(self, refuse=None, fail=None):
        self.calls = []
        self.refuse = refuse
        self.fail = fail

    async def catalogue(self):
        return {"device": "cpu", "models": [
            {"key": "squeezenet", "available": True, "reason": None},
            {"key": "vgg16", "available": False,
             "reason": "vgg16-397923af.pth is missing"}]}

    async def embed(self, key, datas):
        self.calls.append((key, datas))
        if self.fail is not None:
            raise self.fail
        if self.refuse is not None:
            return self.refuse
        errors = {1: "not an image"} if len(datas) > 1 else {}
        return np.ones((len(datas), 3), np.float32), errors

    async def health(self):
        return {"replica": "r1", "queued": {"squeezenet": 0},
                "processed": {"squeezenet": {"images": 5, "batches": 2}}}


@needs_ray
def test_front_backend_hands_images_to_a_replica():
    replica = _Replica()
    backend = RayBackend(ServerConfig(), _FakeHandle(replica))

    async def run():
        await backend.open()
        backend.check("squeezenet")
        for key, status in (("vgg16", 503), ("nope", 404)):
            with pytest.raises(RequestError) as raised:
                backend.check(key)
            assert raised.value.status == status
        vectors, errors = await backend.embed(
            "squeezenet", [memoryview(b"ab"), b"cd"])
        assert replica.calls == [("squeezenet", [b"ab", b"cd"])]
        assert all(type(data) is bytes for data in replica.calls[0][1])
        assert vectors.shape == (2, 3) and errors == {1: "not an image"}
        health = await backend.health()
        assert health["models"] == {"squeezenet": "ready",
                                    "vgg16": "unavailable"}
        assert health["replica"] == "r1"

        replica.refuse = RequestError(503, "overloaded", "busy")
        with pytest.raises(RequestError, match="busy"):
            await backend.embed("squeezenet", [b"x"])

        from ray.exceptions import RayActorError
        replica.refuse, replica.fail = None, RayActorError()
        with pytest.raises(RequestError) as raised:
            await backend.embed("squeezenet", [b"x"])
        assert (raised.value.status, raised.value.code) == \
            (503, "replica_unavailable")

    asyncio.run(run())


# --- on local Ray instances --------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(ingress: str, extra: list[str], env: dict) -> tuple:
    port = _free_port()
    command = [sys.executable, "-m", "orangecontrib.imageanalytics.server",
               "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
               "--models", "squeezenet", "--max-batch", "16",
               "--log-level", "warning", "--ray", "--ray-ingress", ingress,
               *extra]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}"


def _wait(process, url: str, deadline: float) -> None:
    while True:
        try:
            if httpx.get(f"{url}/models", timeout=2,
                         headers={"X-API-Key": API_KEY}).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            output = process.stdout.read().decode(errors="replace")
            pytest.fail(f"the Ray server did not start:\n{output[-4000:]}")
        time.sleep(0.5)


def _stop(processes) -> list:
    """Stop the servers; returns the processes (Ray's included) still alive
    a while after."""
    family = []
    for process in processes:
        try:
            family += psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            pass  # it ended already (it failed to start)
        process.terminate()
    for process in processes:
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
    _, alive = psutil.wait_procs(family, timeout=30)
    for child in alive:
        child.kill()
    return alive


def _beyond_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return not address.is_loopback


def _listeners(pid: int) -> list[tuple[str, int, str]]:
    """``(address, port, process name)`` of every listening TCP socket and
    unconnected UDP socket of a process and all its descendants."""
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
                found.append((connection.laddr.ip, connection.laddr.port,
                              name))
    return found


@pytest.fixture(scope="module")
def ray_servers():
    """Both ingresses at once (their start-ups overlap): the front with two
    replicas and no key, Ray's proxy with one replica and an API key."""
    if not HAVE_RAY:
        pytest.skip('Ray Serve is not installed (pip install '
                    '"Orange3-ImageAnalytics[ray]")')
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    env.pop("ORANGE_EMBEDDING_API_KEY", None)
    env.pop("RAY_ADDRESS", None)
    front = _start("front", ["--ray-cpus", "2", "--replica-cpus", "1",
                             "--min-replicas", "2", "--max-replicas", "2"],
                   env)
    proxy = _start("proxy", ["--ray-cpus", "1", "--replica-cpus", "1",
                             "--max-replicas", "1"],
                   dict(env, ORANGE_EMBEDDING_API_KEY=API_KEY))
    try:
        deadline = time.monotonic() + 150
        _wait(*front, deadline)
        _wait(*proxy, deadline)
        yield {"front": front[1], "proxy": proxy[1],
               "pids": {"front": front[0].pid, "proxy": proxy[0].pid}}
    finally:
        left = _stop([front[0], proxy[0]])
    # the local Ray instances end with their servers
    assert not left, [child.name() for child in left]


def _orange_client(url, tmp_path, monkeypatch):
    return orange_client(url, tmp_path / "orange.pickle", monkeypatch,
                         max_parallel_requests=16)


def _local_vectors(images, tmp_path):
    paths = []
    for i, data in enumerate(images):
        path = tmp_path / f"sent{i}.jpg"
        path.write_bytes(data)
        paths.append(str(path))
    return paths, [outcome.vector
                   for outcome in LocalEmbedder("squeezenet").embed(paths)]


def test_stock_orange_client_through_the_front(ray_servers, tmp_path,
                                               monkeypatch):
    images = [model_input_jpeg("squeezenet", seed) for seed in range(6)]
    malformed = [images[0][:200], b"GIF89a broken", b"\x00" * 50]
    results = _orange_client(ray_servers["front"], tmp_path,
                             monkeypatch).embedd_data(images + malformed)
    assert all(results[i] == [] for i in range(6, 9))
    _, local = _local_vectors(images, tmp_path)
    for served, here in zip(results[:6], local):
        assert len(served) == 1000
        assert cosine(served, here) >= 0.999


def test_our_client_both_protocols_through_the_front(ray_servers, tmp_path):
    from orangecontrib.imageanalytics.embedders.remote import RemoteEmbedder

    url = ray_servers["front"]
    models = httpx.get(f"{url}/models").json()
    assert models["protocols"]["batch"]["path"] == "/v2/embed/{model}"
    assert [m["key"] for m in models["models"]] == ["squeezenet"]
    images = [model_input_jpeg("squeezenet", seed) for seed in range(5)]
    paths, local = _local_vectors(images, tmp_path)
    for mode in ("batch", "orange"):
        outcomes = RemoteEmbedder("squeezenet", url, protocol=mode,
                                  batch_size=2).embed(paths)
        for outcome, here in zip(outcomes, local):
            assert cosine(outcome.vector, here) >= 0.999
    reply = httpx.post(f"{url}/image/vgg16", content=images[0])
    assert (reply.status_code, reply.json()["code"]) == (404, "unknown_model")


async def _load(url: str, bodies: list[bytes], requests: int,
                clients: int) -> int:
    """``requests`` batch requests from ``clients`` concurrent clients;
    returns how many came back whole."""
    from orangecontrib.imageanalytics import protocol

    body = protocol.encode_image_batch(bodies)
    order = iter(range(requests))
    good = 0

    async def client():
        nonlocal good
        async with httpx.AsyncClient(base_url=url, timeout=120) as session:
            for _ in order:
                reply = await session.post(
                    "/v2/embed/squeezenet", content=body,
                    headers={"Content-Type": protocol.REQUEST_TYPE})
                vectors, errors, _ = protocol.decode_embeddings(reply.content)
                good += vectors.shape == (len(bodies), 1000) and not errors

    await asyncio.gather(*(client() for _ in range(clients)))
    return good


def test_requests_spread_over_replicas(ray_servers):
    url = ray_servers["front"]
    bodies = [model_input_jpeg("squeezenet", seed) for seed in range(8)]
    assert asyncio.run(_load(url, bodies, requests=24, clients=6)) == 24
    seen = {}
    for _ in range(40):
        health = httpx.get(f"{url}/health").json()
        seen[health["replica"]] = health["processed"]["squeezenet"]["images"]
        if len(seen) == 2:
            break
    assert len(seen) == 2, seen
    assert all(images > 0 for images in seen.values()), seen


def test_proxy_ingress_serves_the_same_app(ray_servers, tmp_path):
    from orangecontrib.imageanalytics.embedders.remote import RemoteEmbedder

    url = ray_servers["proxy"]
    assert httpx.get(f"{url}/health").status_code == 200
    reply = httpx.get(f"{url}/models")
    assert (reply.status_code, reply.json()["code"]) == (401, "unauthorized")
    images = [model_input_jpeg("squeezenet", seed) for seed in range(4)]
    paths, local = _local_vectors(images, tmp_path)
    outcomes = RemoteEmbedder("squeezenet", url, api_key=API_KEY,
                              batch_size=3).embed(paths)
    for outcome, here in zip(outcomes, local):
        assert cosine(outcome.vector, here) >= 0.999
    reply = httpx.post(f"{url}/image/squeezenet", content=b"not an image",
                       headers={"X-API-Key": API_KEY})
    assert reply.json()["embedding"] == []


def test_nothing_listens_beyond_loopback(ray_servers):
    """With --host 127.0.0.1 and a local Ray instance, no process the server
    started (Ray's GCS, raylet, agents, Serve's controller, proxy and
    replicas included) can be reached from another computer."""
    for ingress, pid in ray_servers["pids"].items():
        listeners = _listeners(pid)
        names = {name for _, _, name in listeners}
        # the whole tree was seen: Ray's own processes listen too
        assert {"gcs_server", "raylet"} <= names, (ingress, names)
        exposed = sorted({f"{name} on {ip} port {port}"
                          for ip, port, name in listeners
                          if _beyond_loopback(ip)})
        assert not exposed, f"{ingress}: " + "; ".join(exposed)
