#!/usr/bin/env python3
"""Speed of the server networks (Inception v3, VGG16, VGG19) on this computer.

For each local copy this measures, in one process and with SqueezeNet as the
yardstick of the same run:

* **pipeline** - :class:`LocalEmbedder` on the first ``--limit`` images of a
  folder, no cache, the model loaded and warmed up before timing starts, as
  it runs by default (a single-threaded pass per core) and with one pass at
  a time on all cores;
* **model only** - forward passes on a fixed batch of 8 with all cores, in
  PyTorch (the engine "auto" uses for these networks) and, with ``--onnx``,
  in ONNX Runtime (exported in memory), to see what the engine choice costs.

The networks get random weights with torchvision's shapes: their speed does
not depend on the values, and the official files are not needed.

Usage::

    python benchmarks/bench_local_copies.py --web WEB_DIR --limit 100 --onnx
"""
from __future__ import annotations

import argparse
import io
import json
import os
import time
import warnings

import numpy as np
import torch

from orangecontrib.imageanalytics.embedders import engines
from orangecontrib.imageanalytics.embedders.local import (
    LocalEmbedder,
    available_cores,
)
from orangecontrib.imageanalytics.embedders.models import build_network
from orangecontrib.imageanalytics.embedders.registry import (
    LOCAL_COPIES,
    get_embedder,
)

EXTENSIONS = (".jpg", ".jpeg", ".png")


def image_paths(folder: str, limit: int) -> list[str]:
    paths = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        paths += [os.path.join(root, f) for f in sorted(files)
                  if f.lower().endswith(EXTENSIONS)]
    return paths[:limit]


def random_network(key: str) -> torch.nn.Module:
    return build_network(get_embedder(key), random_weights=True)


def pipeline_rate(spec, runner, paths: list[str], **options) -> float:
    embedder = LocalEmbedder(spec, cache=None, runner=runner, **options)
    embedder.embed(paths[:8])             # warm-up, outside the timing
    start = time.perf_counter()
    outcomes = embedder.embed(paths)
    elapsed = time.perf_counter() - start
    assert all(o.vector is not None for o in outcomes)
    return len(paths) / elapsed


def model_rate(runner, spec, seconds: float) -> float:
    batch = np.random.default_rng(0).normal(
        0, 1, (8, 3, *spec.input_shape)).astype(np.float32)
    runner(batch)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        runner(batch)
        done += len(batch)
    return done / (time.perf_counter() - start)


def onnx_runner(spec, model, threads: int):
    buffer = io.BytesIO()
    dummy = torch.zeros((1, 3, *spec.input_shape))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (dummy,), buffer, dynamo=False,
                          input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "batch"},
                                        "output": {0: "batch"}},
                          opset_version=engines.ONNX_OPSET)
    return engines.OnnxRunner(spec, buffer.getvalue(), threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--web", metavar="DIR", required=True)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--models", default=",".join(LOCAL_COPIES))
    parser.add_argument("--model-seconds", type=float, default=5.0)
    parser.add_argument("--onnx", action="store_true")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()

    cores = available_cores()
    paths = image_paths(args.web, args.limit)
    print(f"cores {cores}, {len(paths)} images, load "
          f"{os.getloadavg()[0]:.1f}")
    figures: dict[str, dict] = {}

    squeezenet = get_embedder("squeezenet")
    runner = engines.get_runner(squeezenet, threads=1)
    figures["squeezenet"] = {
        "engine": runner.engine,
        "pipeline_img_s": pipeline_rate(squeezenet, runner, paths)}
    print(f"squeezenet ({runner.engine}): pipeline "
          f"{figures['squeezenet']['pipeline_img_s']:.1f} img/s")

    for key in args.models.split(","):
        spec = get_embedder(key)
        model = random_network(key)
        # as get_runner builds it for LocalEmbedder: one thread per pass,
        # a pass per core
        runner = engines.TorchRunner(spec, model, threads=1)
        row = {"engine": "torch",
               "pipeline_img_s": pipeline_rate(spec, runner, paths),
               # one forward pass at a time on every core instead
               "pipeline_1_pass_img_s": pipeline_rate(
                   spec, engines.TorchRunner(spec, model, threads=cores),
                   paths, model_workers=1, model_threads=cores),
               "model_torch_img_s": model_rate(
                   engines.TorchRunner(spec, model, threads=cores), spec,
                   args.model_seconds)}
        if args.onnx:
            row["pipeline_onnx_img_s"] = pipeline_rate(
                spec, onnx_runner(spec, model, 1), paths)
            row["model_onnx_img_s"] = model_rate(
                onnx_runner(spec, model, cores), spec, args.model_seconds)
        row["pipeline_vs_squeezenet"] = \
            row["pipeline_img_s"] / figures["squeezenet"]["pipeline_img_s"]
        figures[key] = row
        print(f"{key}: pipeline {row['pipeline_img_s']:.1f} img/s "
              f"({row['pipeline_vs_squeezenet']:.3f}x SqueezeNet), one "
              f"pass at a time {row['pipeline_1_pass_img_s']:.1f}; model "
              f"only torch {row['model_torch_img_s']:.1f} img/s"
              + (f"; onnx: pipeline {row['pipeline_onnx_img_s']:.1f}, "
                 f"model only {row['model_onnx_img_s']:.1f} img/s"
                 if args.onnx else ""))
    print(f"load at the end {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cores": cores, "images": len(paths),
                       "figures": figures}, f, indent=1)


if __name__ == "__main__":
    main()
