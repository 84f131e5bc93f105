"""The machine line the benchmarks print beside their figures: cores, the
processor as the engines see it and the flags that change their speed
(AVX2, AVX-512, VNNI). Figures compare only within one machine."""
from __future__ import annotations

import os


def machine_line() -> str:
    from orangecontrib.imageanalytics.embedders.processor import current_processor
    processor = current_processor()
    flags = ", ".join(sorted(processor.features)) or "none of note"
    return (f"machine: {os.cpu_count()} cores, {processor.description} "
            f"(flags: {flags}), load average {os.getloadavg()[0]:.1f}")
