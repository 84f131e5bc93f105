"""Command line of the embedding server: ``orange-embedding-server``."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from orangecontrib.imageanalytics.server.config import (
    ConfigError,
    ServerConfig,
)

__all__ = ["build_parser", "config_from_args", "main"]

#: Environment variable with the API key, so that it need not appear in the
#: process list.
API_KEY_ENV = "ORANGE_EMBEDDING_API_KEY"
# the parsed options, without the API key, for worker processes started by
# uvicorn; the key reaches them in $ORANGE_EMBEDDING_API_KEY
_WORKER_ENV = "_ORANGE_EMBEDDING_SERVER_OPTIONS"
# options that hold paths (JSON has no Path)
_PATH_OPTIONS = ("models_file", "weights_dir")


def _models(value: str) -> tuple[str, ...]:
    return tuple(key.strip() for key in value.split(",") if key.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orange-embedding-server",
        description="Serve image embeddings over HTTP, with Orange's protocol "
                    "and a batch protocol. Images are kept in memory only.")
    add = parser.add_argument
    add("--host", default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this computer only; "
             "0.0.0.0 for every interface)")
    add("--port", type=int, default=8000, help="port (default: 8000)")
    add("--device", default="auto",
        help="cpu, cuda, cuda:N, or auto (cuda if available; default)")
    add("--models", type=_models, default=None,
        help="comma-separated model keys to serve (default: all known; those "
             "without weights are listed as unavailable)")
    add("--models-file", type=Path, default=None,
        help="TOML or JSON file declaring more models (TorchScript or ONNX)")
    add("--weights-dir", type=Path, default=None,
        help="folder with weight files (default: $ORANGE_EMBEDDING_WEIGHTS_DIR "
             "or the user's data folder)")
    add("--api-key", default=None,
        help=f"require this key from clients; better set ${API_KEY_ENV}, "
             "which keeps the key out of the process list")
    add("--max-batch", type=int, default=None,
        help="largest forward pass (default: 256 on a GPU, 32 on a CPU)")
    add("--max-wait-ms", type=float, default=5.0,
        help="how long an image may wait for a fuller batch (default: 5)")
    add("--max-queue", type=int, default=2048,
        help="images admitted per model before replying 503 (default: 2048)")
    add("--max-body-mb", type=float, default=64,
        help="largest request body in MiB (default: 64)")
    add("--max-buffered-mb", type=float, default=None,
        help="request bodies held at once, over all requests, in MiB; "
             "beyond that, 503 (default: 1024, at least 4 bodies)")
    add("--max-images-per-request", type=int, default=1024,
        help="most images in one batch request (default: 1024)")
    add("--max-pixels", type=int, default=40_000_000,
        help="largest image in pixels (default: 40,000,000)")
    add("--timeout", type=float, default=120.0,
        help="seconds per request, upload included (default: 120)")
    add("--decode-threads", type=int, default=None,
        help="image decoding threads (default: one per core)")
    add("--precision", choices=("auto", "fp32", "fp16", "bf16"),
        default="auto", help="GPU arithmetic (default: fp16 on GPU)")
    add("--no-channels-last", action="store_true",
        help="keep NCHW tensors on the GPU")
    add("--decoder", choices=("cpu", "gpu"), default="cpu",
        help="decode JPEGs with Pillow (cpu) or nvJPEG via torchvision (gpu)")
    add("--engine", choices=("auto", "onnx", "torch"), default="auto",
        help="engine for SqueezeNet on the CPU (default: fastest available)")
    add("--compile", action="store_true",
        help="torch.compile the built-in networks (GPU; slower start)")
    add("--random-weights", action="store_true",
        help="random weights for Inception v3 / VGG (benchmarks only)")
    add("--download", nargs="+", metavar="MODEL", default=None,
        help="download the weight files of these models into the weights "
             "folder, check them, and exit")
    add("--workers", type=int, default=1,
        help="server processes sharing the port, each with its own models "
             "and batches; more than one helps Orange's protocol (many small "
             "requests) on a fast GPU; with --ray, HTTP fronts sharing the "
             "replicas (default: 1)")
    add("--log-level", default="info",
        choices=("critical", "error", "warning", "info", "debug"))
    ray = parser.add_argument_group(
        "Ray Serve", "scale out over GPUs and machines (needs the ray extra: "
        'pip install "Orange3-ImageAnalytics[ray]")')
    ray.add_argument(
        "--ray", action="store_true",
        help="run the models in Ray Serve replicas, one per GPU (or per "
             "group of CPU cores), added and removed on load")
    ray.add_argument(
        "--ray-address", default=None, metavar="ADDRESS",
        help="a running Ray cluster (from 'ray start --head'; 'auto' for the "
             "one on this machine); default: start a local Ray instance")
    ray.add_argument(
        "--ray-ingress", choices=("front", "proxy"), default="front",
        help="front: this server's HTTP front calls the replicas through "
             "deployment handles (default, faster); proxy: Ray Serve's HTTP "
             "proxy, each replica runs the whole app")
    ray.add_argument("--min-replicas", type=int, default=1,
                     help="fewest replicas when idle (default: 1)")
    ray.add_argument(
        "--max-replicas", type=int, default=None,
        help="most replicas (default: one per GPU of the cluster, or per "
             "group of --replica-cpus cores)")
    ray.add_argument(
        "--replica-cpus", type=float, default=None,
        help="CPUs per replica, also its decoding threads (default: the "
             "cluster's CPUs per GPU; 4 without GPUs)")
    ray.add_argument("--replica-gpus", type=float, default=None,
                     help="GPUs per replica (default: 1 where there are GPUs)")
    ray.add_argument(
        "--target-ongoing-requests", type=float, default=64,
        help="requests per replica that autoscaling aims at (default: 64)")
    ray.add_argument(
        "--ray-cpus", type=int, default=None,
        help="CPUs of the local Ray instance (default: every core)")
    ray.add_argument(
        "--ray-expose-ports", action="store_true",
        help="start even if processes of the local Ray instance listen "
             "beyond this computer (by default it is bound to 127.0.0.1 and "
             "the server refuses to start if any of them is not)")
    return parser


def ray_options_from_args(args: argparse.Namespace):
    """The :class:`~.ray_serve.RayOptions` of the command line."""
    from orangecontrib.imageanalytics.server.ray_serve import RayOptions

    return RayOptions(
        address=args.ray_address, ingress=args.ray_ingress,
        min_replicas=args.min_replicas, max_replicas=args.max_replicas,
        replica_cpus=args.replica_cpus, replica_gpus=args.replica_gpus,
        target_ongoing_requests=args.target_ongoing_requests,
        num_cpus=args.ray_cpus, expose_ports=args.ray_expose_ports)


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        host=args.host, port=args.port, device=args.device,
        models=args.models, models_file=args.models_file,
        weights_dir=args.weights_dir,
        api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        max_buffered_bytes=None if args.max_buffered_mb is None
        else int(args.max_buffered_mb * 1024 * 1024),
        max_images_per_request=args.max_images_per_request,
        max_pixels=args.max_pixels, request_timeout=args.timeout,
        decode_threads=args.decode_threads, precision=args.precision,
        channels_last=not args.no_channels_last, decoder=args.decoder,
        engine=args.engine, compile=args.compile,
        random_weights=args.random_weights)


def _download(keys: Sequence[str], weights_dir: Path | None) -> int:
    from orangecontrib.imageanalytics.embedders.errors import (
        EmbedderUnavailable,
    )
    from orangecontrib.imageanalytics.embedders.registry import get_embedder
    from orangecontrib.imageanalytics.embedders.weights import (
        download_weights,
    )

    status = 0
    for key in keys:
        try:
            spec = get_embedder(key)

            def progress(done: int, total: int | None, key: str = key) -> None:
                of = f" of {total / 1e6:.0f}" if total else ""
                print(f"\r{key}: {done / 1e6:.0f}{of} MB", end="",
                      file=sys.stderr, flush=True)

            path = download_weights(spec, weights_dir, progress=progress)
            print(f"\n{key}: {path} (SHA-256 checked)", file=sys.stderr)
        except (ValueError, EmbedderUnavailable) as error:
            print(f"\n{key}: {error}", file=sys.stderr)
            status = 1
    return status


def worker_options(args: argparse.Namespace) -> str:
    """The options of a worker process (``--workers`` > 1), as JSON.

    The API key is left out, so that it is not copied along wherever the
    options are seen (an environment dump, a log); :func:`main` hands it to
    the workers in ``$ORANGE_EMBEDDING_API_KEY``, which
    :func:`config_from_args` reads.
    """
    options = {key: str(value) if isinstance(value, Path) else value
               for key, value in vars(args).items()
               if key not in ("api_key", "download")}
    return json.dumps(options)


def args_from_worker_options(text: str) -> argparse.Namespace:
    """Inverse of :func:`worker_options` (the API key comes from the
    environment, as :func:`config_from_args` reads it)."""
    args = build_parser().parse_args([])
    for key, value in json.loads(text).items():
        setattr(args, key, value)
    for key in _PATH_OPTIONS:
        if getattr(args, key) is not None:
            setattr(args, key, Path(getattr(args, key)))
    if args.models is not None:
        args.models = tuple(args.models)
    return args


def app_factory():
    """Application of a worker process (``--workers`` > 1)."""
    from orangecontrib.imageanalytics.server.app import create_app

    args = args_from_worker_options(os.environ[_WORKER_ENV])
    logging.basicConfig(level=args.log_level.upper())
    if args.ray:
        from orangecontrib.imageanalytics.server.ray_serve import front_app
        return front_app(config_from_args(args))
    return create_app(config_from_args(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``orange-embedding-server``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: "
                               "%(message)s")
    if args.download:
        return _download(args.download, args.weights_dir)
    from orangecontrib.imageanalytics.embedders.engines import torch_installed
    if not torch_installed():
        print("orange-embedding-server: the server runs its models in "
              "PyTorch, which is not installed. Install it with: pip install "
              "\"Orange3-ImageAnalytics[server]\"", file=sys.stderr)
        return 2

    import uvicorn

    from orangecontrib.imageanalytics.server.app import create_app

    config = config_from_args(args)
    try:
        app = create_app(config)
    except ConfigError as error:
        print(f"orange-embedding-server: {error}", file=sys.stderr)
        return 2
    if config.host not in ("127.0.0.1", "localhost", "::1") \
            and not config.api_key:
        logging.getLogger(__name__).warning(
            "listening on %s without an API key: anyone who can reach this "
            "address can use the server", config.host)
    options = {"host": config.host, "port": config.port,
               "log_level": args.log_level, "access_log": False,
               # many clients keep connections open between images
               "backlog": 4096, "timeout_keep_alive": 30}
    if args.ray:
        if args.workers > 1 and args.ray_ingress == "proxy":
            print("orange-embedding-server: --workers runs more HTTP fronts; "
                  "Ray's proxy has none (--ray-ingress front)",
                  file=sys.stderr)
            return 2
        from orangecontrib.imageanalytics.server import ray_binding

        if ray_binding.on_loopback(args.ray_address):
            # before Ray is imported, which reads it
            ray_binding.keep_ray_on_loopback()
        try:
            import ray.serve  # noqa: F401 - fail here, with advice

            from orangecontrib.imageanalytics.server import ray_serve
            ray_options = ray_options_from_args(args)
        except ImportError as error:
            print(f"orange-embedding-server: --ray needs Ray Serve ({error}); "
                  'pip install "Orange3-ImageAnalytics[ray]"', file=sys.stderr)
            return 2
        except ValueError as error:
            print(f"orange-embedding-server: {error}", file=sys.stderr)
            return 2
        if args.workers > 1:
            # as below; serve_on_ray adds the address of the Ray instance
            if config.api_key:
                os.environ[API_KEY_ENV] = config.api_key
            os.environ[_WORKER_ENV] = worker_options(args)
        try:
            return ray_serve.serve_on_ray(config, ray_options, options,
                                          workers=args.workers)
        except ray_binding.ExposedPortsError as error:
            print(f"orange-embedding-server: {error}", file=sys.stderr)
            return 2
    if args.workers > 1:
        # each worker rebuilds the app from the same options; the key goes
        # separately, in the variable config_from_args reads
        if config.api_key:
            os.environ[API_KEY_ENV] = config.api_key
        os.environ[_WORKER_ENV] = worker_options(args)
        uvicorn.run("orangecontrib.imageanalytics.server.cli:app_factory",
                    factory=True, workers=args.workers, **options)
    else:
        uvicorn.run(app, **options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
