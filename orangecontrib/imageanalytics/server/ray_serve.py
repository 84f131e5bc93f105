"""The embedding server as a Ray Serve application, for many GPUs and machines.

Each replica is the same server core as a single server process (a
:class:`~orangecontrib.imageanalytics.server.app.ServerState`: models,
dynamic batchers, decode pool, admission limits), placed by Ray on a GPU (or
on a group of CPU cores) anywhere in the cluster.  Ray Serve adds and removes
replicas on the number of requests each holds (its queue depth) and spreads
requests over them.

Two ingresses speak HTTP to clients:

``front`` (the default)
    This package's Starlette app (:func:`~.app.create_app`) runs in the
    launching process under uvicorn, as a plain server would, with a
    :class:`RayBackend` that hands each request's images to a replica
    through a Ray Serve deployment handle.  Body limits, the API key,
    Orange's protocol, the batch protocol, ``/models`` and ``/health`` stay
    in the front; replicas only decode and embed.
``proxy``
    Ray Serve's own HTTP proxy routes requests to replicas that each run the
    whole Starlette app.

A local Ray instance (no cluster address) listens on loopback only, and the
server checks that it does (:mod:`~.ray_binding`); joining a cluster with
public addresses logs a warning.

``benchmarks/bench_server.py --ray`` measures both against the plain server:
on loopback Ray's proxy was slower with both protocols and spent 1.5-1.9
times the front's CPU per image (``benchmarks/README.md``), hence the
default.

Ray is an optional dependency (``pip install "Orange3-ImageAnalytics[ray]"``);
this module imports it only inside functions.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from orangecontrib.imageanalytics.server.app import (
    RequestError,
    ServerState,
    create_app,
)
from orangecontrib.imageanalytics.server.batcher import AdmissionCounter
from orangecontrib.imageanalytics.server.config import ServerConfig
from orangecontrib.imageanalytics.server.ray_binding import (
    check_listeners,
    keep_ray_on_loopback,
    keep_replica_server_on_loopback,
    on_loopback,
    warn_about_cluster,
)

__all__ = [
    "APP_NAME",
    "INGRESSES",
    "EmbeddingReplica",
    "RayBackend",
    "RayOptions",
    "ReplicaPlan",
    "connect",
    "deploy",
    "front_app",
    "plan_replicas",
    "replica_config",
    "serve_on_ray",
]

log = logging.getLogger(__name__)

#: Name of the Ray Serve application (``serve status`` shows it).
APP_NAME = "orange-embedding-server"
#: Name of the replicas' deployment.
DEPLOYMENT_NAME = "EmbeddingReplica"
INGRESSES = ("front", "proxy")
#: Replica CPUs on a cluster without GPUs, when not given.
DEFAULT_CPU_GROUP = 4
#: Ray's settings of a local instance: images handed to replicas stay in
#: memory (a full object store makes callers wait instead of writing
#: objects to disk), as they do in a single server process.
NO_SPILLING = {"automatic_object_spilling_enabled": False}
# the Ray instance, for front processes started by uvicorn (--workers)
RAY_ADDRESS_ENV = "_ORANGE_EMBEDDING_RAY_ADDRESS"
#: The node address of a local Ray instance.
LOOPBACK_NODE_IP = "127.0.0.1"


@dataclass(frozen=True)
class RayOptions:
    """How to deploy on Ray.

    Attributes
    ----------
    address
        A running cluster (``ray start --head`` prints it; ``"auto"`` finds
        the one on this machine); ``None`` starts a local Ray instance that
        ends with the server.
    ingress
        ``"front"`` or ``"proxy"`` (see the module docstring).
    min_replicas, max_replicas
        Bounds of autoscaling; ``max_replicas=None`` for one replica per GPU
        of the cluster (or per group of ``replica_cpus`` cores).  Equal
        bounds give a fixed number of replicas.
    replica_cpus
        CPUs reserved per replica (they also set its decoding threads, unless
        ``ServerConfig.decode_threads`` is given); ``None`` for the cluster's
        CPUs divided by its GPUs, or 4 on a cluster without GPUs.
    replica_gpus
        GPUs per replica; ``None`` for 1 when the cluster has GPUs and the
        device is not ``cpu``, else 0.
    target_ongoing_requests
        Requests per replica that autoscaling aims at: more and it adds
        replicas, fewer and it removes them.
    max_ongoing_requests
        Requests a replica holds at once (its dynamic batches are made of
        them); more wait in Ray's router.
    num_cpus
        CPUs of a local Ray instance (``None``: every core).
    expose_ports
        Start a local Ray instance even when some of its processes listen
        beyond loopback (a warning names them); by default the server
        refuses to start then.
    """
    address: str | None = None
    ingress: str = "front"
    min_replicas: int = 1
    max_replicas: int | None = None
    replica_cpus: float | None = None
    replica_gpus: float | None = None
    target_ongoing_requests: float = 64
    max_ongoing_requests: int = 512
    num_cpus: int | None = None
    expose_ports: bool = False

    def __post_init__(self) -> None:
        if self.ingress not in INGRESSES:
            raise ValueError(f"ingress must be one of {', '.join(INGRESSES)}")
        if self.min_replicas < 0 or (self.max_replicas is not None
                                     and self.max_replicas < 1):
            raise ValueError("replicas: min must be >= 0 and max >= 1")


@dataclass(frozen=True)
class ReplicaPlan:
    """Resources and scaling of the replicas (see :func:`plan_replicas`)."""
    device: str
    cpus: float
    gpus: float
    min_replicas: int
    max_replicas: int
    decode_threads: int

    def deployment_options(self, options: RayOptions) -> dict[str, Any]:
        """Keyword arguments of ``serve.deployment``."""
        scaling: dict[str, Any]
        if self.min_replicas == self.max_replicas:
            scaling = {"num_replicas": self.max_replicas}
        else:
            scaling = {"autoscaling_config": {
                "min_replicas": self.min_replicas,
                "initial_replicas": max(1, self.min_replicas),
                "max_replicas": self.max_replicas,
                "target_ongoing_requests": options.target_ongoing_requests,
            }}
        return {"name": DEPLOYMENT_NAME,
                "ray_actor_options": {"num_cpus": self.cpus,
                                      "num_gpus": self.gpus},
                "max_ongoing_requests": options.max_ongoing_requests,
                **scaling}


def plan_replicas(config: ServerConfig, options: RayOptions,
                  resources: Mapping[str, float]) -> ReplicaPlan:
    """Decide where replicas run and how many there may be.

    Parameters
    ----------
    config
        The server's options (``device`` and ``decode_threads`` matter).
    options
        The Ray options.
    resources
        The cluster's resources, as ``ray.cluster_resources()`` gives them.

    Raises
    ------
    ValueError
        If a CUDA device is asked for on a cluster without GPUs, or the
        resources per replica exceed the cluster's.
    """
    cluster_cpus = float(resources.get("CPU", 0))
    cluster_gpus = float(resources.get("GPU", 0))
    wants_cuda = config.device.startswith("cuda")
    if options.replica_gpus is not None:
        gpus = float(options.replica_gpus)
    else:
        gpus = 1.0 if cluster_gpus and config.device != "cpu" else 0.0
    if wants_cuda and not (gpus and cluster_gpus):
        raise ValueError(f"device {config.device} needs GPUs, but the Ray "
                         "cluster has none (or --replica-gpus is 0)")
    if gpus > 0:
        # one GPU is the replica's own: Ray sets CUDA_VISIBLE_DEVICES
        device = "cuda"
        default_cpus = max(1.0, math.floor(cluster_cpus / cluster_gpus))
        slots = cluster_gpus / gpus
    else:
        device = "cpu"
        default_cpus = max(1.0, min(float(DEFAULT_CPU_GROUP), cluster_cpus))
        slots = None
    cpus = float(options.replica_cpus) if options.replica_cpus is not None \
        else default_cpus
    if cpus > cluster_cpus or gpus > cluster_gpus:
        raise ValueError(
            f"a replica needs {cpus:g} CPUs and {gpus:g} GPUs; the Ray "
            f"cluster has {cluster_cpus:g} and {cluster_gpus:g}")
    by_cpus = cluster_cpus / cpus if cpus else math.inf
    fit = max(1, int(min(by_cpus, slots if slots is not None else math.inf)))
    maximum = options.max_replicas if options.max_replicas is not None \
        else fit
    minimum = min(options.min_replicas, maximum)
    threads = config.decode_threads or max(1, math.ceil(cpus))
    return ReplicaPlan(device=device, cpus=cpus, gpus=gpus,
                       min_replicas=minimum, max_replicas=maximum,
                       decode_threads=threads)


def replica_config(config: ServerConfig, plan: ReplicaPlan, *,
                   keep_api_key: bool) -> ServerConfig:
    """The options a replica runs with: its device and decoding threads; the
    API key only where the replica itself checks it (``proxy``)."""
    return dataclasses.replace(
        config, device=plan.device, decode_threads=plan.decode_threads,
        api_key=config.api_key if keep_api_key else None)


class EmbeddingReplica:
    """One replica of the deployment: a :class:`ServerState` in a Ray actor.

    Ray Serve calls the async constructor, so the replica counts as started
    once its models are loaded and warmed up.
    """

    async def __init__(self, config: ServerConfig) -> None:
        from ray import serve

        keep_replica_server_on_loopback()
        self.state = ServerState(config)
        self.replica = serve.get_replica_context().replica_id.unique_id
        await self.state.open()

    async def embed(self, key: str, datas: Sequence[bytes]
                    ) -> tuple[np.ndarray, dict[int, str]] | RequestError:
        """:meth:`ServerState.embed`; a refusal is returned, not raised, so
        that it reaches the front as itself rather than wrapped in Ray's
        task error."""
        try:
            return await self.state.embed(key, datas)
        except RequestError as error:
            return error

    async def catalogue(self) -> dict[str, Any]:
        return await self.state.catalogue()

    async def health(self) -> dict[str, Any]:
        return {"replica": self.replica, **await self.state.health()}

    def __del__(self) -> None:
        state = getattr(self, "state", None)
        if state is not None:
            state.stop()


def _ingress_class(config: ServerConfig):
    """A deployment class running the whole app (``proxy`` ingress)."""
    from ray import serve

    def build_app():
        return create_app(config)

    @serve.ingress(build_app)
    class EmbeddingIngress:
        def __init__(self) -> None:
            keep_replica_server_on_loopback()

    return EmbeddingIngress


def _unavailable(error: BaseException) -> RequestError:
    # no "embedding" in the reply: Orange's client tries the image again;
    # the first line only: Ray's messages go on with remote tracebacks
    lines = str(error).strip().splitlines() or [""]
    return RequestError(
        503, "replica_unavailable",
        f"no replica could take the request: {type(error).__name__}: "
        f"{lines[0]}", headers={"Retry-After": "2"})


class RayBackend:
    """The backend of the HTTP front: hands images to replicas.

    It has the methods of :class:`ServerState` that the app's handlers call,
    so :func:`~.app.create_app` serves it like a local state.  The list of
    models comes from a replica when the front starts.
    """

    def __init__(self, config: ServerConfig, handle) -> None:
        self.config = config
        # bodies are read here, in the front: its memory is what to bound
        self.buffered = AdmissionCounter(config.resolved_max_buffered_bytes())
        self._handle = handle
        self._catalogue: dict[str, Any] = {"device": "", "models": []}
        self._models: dict[str, dict] = {}

    async def _call(self, method: str, *args):
        from ray.exceptions import RayError
        from ray.serve.exceptions import RayServeException

        try:
            return await getattr(self._handle, method).remote(*args)
        except (RayError, RayServeException) as error:
            log.warning("a replica call failed: %s", error)
            raise _unavailable(error) from error

    async def open(self) -> None:
        self._catalogue = await self._call("catalogue")
        self._models = {model["key"]: model
                        for model in self._catalogue["models"]}

    async def close(self) -> None:
        pass

    def check(self, key: str) -> None:
        model = self._models.get(key)
        if model is None:
            raise RequestError(
                404, "unknown_model",
                f"Unknown model {key!r}; this server has: "
                + ", ".join(self._models))
        if not model["available"]:
            raise RequestError(503, "model_unavailable", model["reason"])

    async def embed(self, key: str, datas: Sequence[bytes]
                    ) -> tuple[np.ndarray, dict[int, str]]:
        result = await self._call("embed", key, [bytes(d) for d in datas])
        if isinstance(result, RequestError):
            raise result
        return result

    async def catalogue(self) -> dict[str, Any]:
        return self._catalogue

    async def health(self) -> dict[str, Any]:
        """Readiness from the front's list; queues and counts of the replica
        that answers (Ray picks one)."""
        try:
            replica = await self._call("health")
        except RequestError:
            replica = {"replica": None, "queued": {}, "processed": {}}
        return {"models": {key: "ready" if model["available"]
                           else "unavailable"
                           for key, model in self._models.items()},
                "replica": replica["replica"],
                "queued": replica["queued"],
                "processed": replica["processed"]}


def connect(options: RayOptions) -> bool:
    """Connect to the cluster, or start a local instance bound to loopback
    (:mod:`~.ray_binding`); returns whether this process started Ray (and so
    should shut it down).

    A cluster with public addresses is joined with a warning.
    """
    if on_loopback(options.address):
        keep_ray_on_loopback()
    import ray

    if ray.is_initialized():
        return False
    if options.address is None:
        # "local": a new instance even where RAY_ADDRESS or a cluster
        # started by `ray start` would be found
        for attempt in range(2):
            try:
                ray.init(address="local", num_cpus=options.num_cpus,
                         include_dashboard=False,
                         _node_ip_address=LOOPBACK_NODE_IP,
                         _system_config=NO_SPILLING)
                return True
            # Ray gives its raylet a fixed 30 s to register; on a busy
            # machine that can pass, and a second start usually succeeds
            except Exception as error:  # noqa: BLE001 - Ray raises Exception
                if attempt or "timed out during startup" not in str(error):
                    raise
                logging.getLogger(__name__).warning(
                    "Ray did not start in time (%s); starting it again", error)
                ray.shutdown()
    context = ray.init(address=options.address)
    warn_about_cluster(context.dashboard_url)
    return False


def deploy(config: ServerConfig, options: RayOptions):
    """Deploy the replicas (and, for ``proxy``, Ray's HTTP proxy on
    ``config.host:config.port``); Ray must be initialised.

    Returns the deployment handle once every initial replica has loaded its
    models.
    """
    import ray
    from ray import serve

    plan = plan_replicas(config, options, ray.cluster_resources())
    log.info("replicas: %s, %g CPUs and %g GPUs each, %d to %d", plan.device,
             plan.cpus, plan.gpus, plan.min_replicas, plan.max_replicas)
    proxy = options.ingress == "proxy"
    serve.start(proxy_location="HeadOnly" if proxy else "Disabled",
                http_options={"host": config.host, "port": config.port})
    replica = replica_config(config, plan, keep_api_key=proxy)
    cls = _ingress_class(replica) if proxy else EmbeddingReplica
    deployment = serve.deployment(cls, **plan.deployment_options(options))
    app = deployment.bind() if proxy else deployment.bind(replica)
    # a log line per request costs the replicas more than a small batch
    return serve.run(app, name=APP_NAME, route_prefix="/" if proxy else None,
                     logging_config={"enable_access_log": False})


def front_app(config: ServerConfig):
    """The app of one of several front processes (``--workers``): it joins
    the Ray instance the launching process deployed on."""
    import ray
    from ray import serve

    # Ray's driver exits on SIGTERM at once; uvicorn's handler (already in
    # place) shuts the worker down gracefully
    handler = signal.getsignal(signal.SIGTERM)
    ray.init(address=os.environ[RAY_ADDRESS_ENV], log_to_driver=False)
    signal.signal(signal.SIGTERM, handler)
    handle = serve.get_deployment_handle(DEPLOYMENT_NAME, app_name=APP_NAME)
    return create_app(config, backend=RayBackend(config, handle))


def serve_on_ray(config: ServerConfig, options: RayOptions,
                 uvicorn_options: dict[str, Any], *, workers: int = 1) -> int:
    """Run the server on Ray until interrupted (the ``--ray`` command line).

    Parameters
    ----------
    config
        The server's options.
    options
        How to deploy.
    uvicorn_options
        Options of the front's uvicorn server (``host``, ``port``, ...).
    workers
        Front processes; above 1, each builds its app with
        ``orangecontrib.imageanalytics.server.cli:app_factory`` from the
        options the command line left in the environment.
    """
    import ray
    from ray import serve

    started = connect(options)
    try:
        if started:
            check_listeners(config.port, accept=options.expose_ports)
        handle = deploy(config, options)
        if started:
            # Serve's controller, proxy and replicas
            check_listeners(config.port, accept=options.expose_ports)
        if options.ingress == "front":
            import uvicorn

            if workers > 1:
                os.environ[RAY_ADDRESS_ENV] = \
                    ray.get_runtime_context().gcs_address
                uvicorn.run(
                    "orangecontrib.imageanalytics.server.cli:app_factory",
                    factory=True, workers=workers, **uvicorn_options)
            else:
                app = create_app(config, backend=RayBackend(config, handle))
                uvicorn.run(app, **uvicorn_options)
        else:
            log.info("Ray Serve's proxy listens on http://%s:%d",
                     config.host, config.port)
            _wait_for_signal()
    finally:
        if started:
            # the whole instance is ours: stopping it stops the replicas
            ray.shutdown()
        else:
            serve.delete(APP_NAME)
    return 0


def _wait_for_signal() -> None:
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
