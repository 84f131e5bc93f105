#!/usr/bin/env python3
"""How close SqueezeNet's INT8 models come to float32 on this processor.

Quantises SqueezeNet in each INT8 format (signed weights "u8s8", unsigned
"u8u8") and compares each model's vectors with the float32 model's on the
engine's check pictures (``quantize.check_batch``), printing the processor,
its flags and the minimum and mean cosine per format, and which format the
engine would choose here.

The processors that matter differ from the one at hand, so the INT8 part can
run under an emulator while the float32 vectors come from a native run (an
emulated float32 pass is far slower, and its result does not depend on the
processor)::

    python benchmarks/bench_int8.py --save-reference /tmp/ref.npz
    qemu-x86_64 -cpu max python benchmarks/bench_int8.py --reference /tmp/ref.npz

(QEMU 7.2's ``-cpu max`` is an x86-64 with AVX2 and without AVX-512 or VNNI.)
"""
from __future__ import annotations

import argparse
import io
import time

import numpy as np

from orangecontrib.imageanalytics.embedders import engines
from orangecontrib.imageanalytics.embedders.processor import current_processor
from orangecontrib.imageanalytics.embedders.quantize import (
    MIN_COSINE,
    U8S8,
    U8U8,
    check_batch,
    cosine_similarity,
    int8_format,
    quantize_int8,
)
from orangecontrib.imageanalytics.embedders.registry import get_embedder

SPEC = get_embedder("squeezenet")


def vectors(model: bytes, batch: np.ndarray) -> np.ndarray:
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model, options,
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.vstack([session.run(None, {name: batch[i:i + 1]})[0]
                      for i in range(len(batch))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--save-reference", metavar="FILE",
                        help="write the float32 model, the INT8 models and "
                             "the float32 vectors here, and stop")
    parser.add_argument("--reference", metavar="FILE",
                        help="read them from here instead of computing them")
    args = parser.parse_args()

    processor = current_processor()
    print(f"processor: {processor.description} (flags: "
          f"{', '.join(sorted(processor.features)) or 'none of note'}); "
          f"the engine's format here: {int8_format().name}")
    batch = check_batch(SPEC)
    formats = (U8S8, U8U8)
    if args.reference:
        saved = np.load(args.reference)
        exact = saved["exact"]
        models = {f.name: saved[f.name].tobytes() for f in formats}
    else:
        buffer = io.BytesIO()
        engines._export_onnx(SPEC, buffer)
        float_model = buffer.getvalue()
        models = {f.name: quantize_int8(float_model, SPEC, quant_format=f)
                  for f in formats}
        exact = vectors(float_model, batch)
    if args.save_reference:
        np.savez(args.save_reference, exact=exact, **{
            name: np.frombuffer(model, dtype=np.uint8)
            for name, model in models.items()})
        print(f"saved the float32 vectors and the models to "
              f"{args.save_reference}")
        return
    for name, model in models.items():
        start = time.perf_counter()
        cosine = cosine_similarity(vectors(model, batch), exact)
        verdict = "accepted" if cosine.min() >= MIN_COSINE else "refused"
        print(f"{name}: {len(batch)} check pictures, cosine to float32 "
              f"min {cosine.min():.4f}, mean {cosine.mean():.4f} -> "
              f"{verdict} ({time.perf_counter() - start:.1f} s)",
              flush=True)


if __name__ == "__main__":
    main()
