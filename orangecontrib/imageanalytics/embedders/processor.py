"""What this processor offers the model engines: its architecture and the
instruction-set extensions that change ONNX Runtime's INT8 kernels.

ONNX Runtime multiplies INT8 matrices with different instructions on
different processors.  With VNNI (AVX-512 VNNI, AVX-VNNI, AMX) unsigned
activations times signed weights are summed in 32 bits; on AVX2 and on
AVX-512 without VNNI the same "U8S8" product goes through ``vpmaddubsw``,
whose 16-bit intermediate sums saturate, and SqueezeNet's vectors drift to a
cosine of 0.95 from the exact ones (ONNX Runtime's quantisation docs say
so, and suggest ``reduce_range`` or unsigned weights, "U8U8").  The INT8
engine therefore chooses its format from :func:`current_processor` and
checks the result on the processor it runs on (``quantize.py``).

Detection uses NumPy's own run-time dispatch table (every OS and
architecture NumPy supports, asked of the processor itself) and, on Linux,
``/proc/cpuinfo`` for the flags NumPy does not report (AVX-VNNI, AMX),
unless it claims what NumPy denies (under an emulator it describes the
host).
"""
from __future__ import annotations

import functools
import platform
from dataclasses import dataclass

__all__ = ["Processor", "current_processor"]


@dataclass(frozen=True)
class Processor:
    """The facts about a processor that the engines depend on.

    Attributes
    ----------
    arch
        ``"x86-64"``, ``"arm64"`` or the machine name ``platform`` gives.
    features
        Lower-case names among ``"avx2"``, ``"avx512"``, ``"vnni"``
        (AVX-512 VNNI, AVX-VNNI or AMX on x86-64), ``"dotprod"`` (ARM's
        SDOT/UDOT).
    """
    arch: str
    features: frozenset[str]

    @property
    def has_vnni(self) -> bool:
        return "vnni" in self.features

    @property
    def description(self) -> str:
        """For people: e.g. "x86-64 with AVX2, without VNNI"."""
        if self.arch == "x86-64":
            simd = "AVX-512" if "avx512" in self.features else \
                "AVX2" if "avx2" in self.features else "SSE only"
            return f"x86-64 with {simd}, " + (
                "with VNNI" if self.has_vnni else "without VNNI")
        if self.arch == "arm64":
            return "ARM64 " + ("with" if "dotprod" in self.features
                               else "without") + " dot-product instructions"
        return self.arch

    @property
    def signature(self) -> str:
        """For cache keys: the same for processors that the INT8 kernels
        treat alike."""
        return "-".join([self.arch, *sorted(self.features)])


def _linux_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def _numpy_features() -> dict[str, bool]:
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:     # NumPy < 2
        try:
            from numpy.core._multiarray_umath import __cpu_features__
        except ImportError:
            return {}
    return dict(__cpu_features__)


@functools.cache
def current_processor() -> Processor:
    """The processor this process runs on (detected once)."""
    machine = platform.machine().lower()
    numpy = {name for name, present in _numpy_features().items() if present}
    flags = _linux_flags()
    if numpy and ({"avx2", "avx512f"} & flags) - {
            name.lower() for name in numpy if name in ("AVX2", "AVX512F")}:
        # /proc/cpuinfo describes the host where this process does not run
        # on it (an emulator, a masked virtual machine); NumPy asked the
        # processor itself
        flags = set()
    features = set()
    if machine in ("x86_64", "amd64", "x64"):
        arch = "x86-64"
        if "AVX2" in numpy or "avx2" in flags:
            features.add("avx2")
        if "AVX512F" in numpy or "avx512f" in flags:
            features.add("avx512")
        if {"AVX512VNNI", "AVX5124VNNIW"} & numpy \
                or {"avx512_vnni", "avx_vnni", "amx_int8"} & flags:
            features.add("vnni")
    elif machine in ("aarch64", "arm64"):
        arch = "arm64"
        if "ASIMDDP" in numpy or "asimddp" in flags:
            features.add("dotprod")
    else:
        arch = machine or "unknown"
    return Processor(arch, frozenset(features))
