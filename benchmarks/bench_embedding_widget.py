#!/usr/bin/env python3
"""Image Embedding widget: how long the GUI thread is held while it embeds.

Feeds the Import Images table of a folder to the widget (headless Qt) and
times every ``QApplication.processEvents()`` call until the embeddings are
on the output: the longest call is the longest freeze a user would see.
Three runs, each in a new widget:

* **cold** - an empty cache folder (no embeddings, no converted model), so
  the model is built as on a first start;
* **cached** - the same images again: every vector comes from the cache;
* **cancel** - the embeddings cache cleared, Cancel pressed after
  ``--cancel-after`` seconds: the time until the widget is idle again, and
  the CPU the process still uses in the second after (the workers must
  stop too).

Usage::

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_embedding_widget.py \
        FOLDER [--model squeezenet] [--cancel-after 1.0]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", help="a folder of images (e.g. the "
                                       "'web' or 'camera' workload)")
    parser.add_argument("--model", default="squeezenet",
                        help="a local embedder (default squeezenet)")
    parser.add_argument("--cancel-after", type=float, default=1.0,
                        help="seconds before Cancel in the third run")
    parser.add_argument("--limit", type=float, default=600.0,
                        help="seconds allowed for each run")
    args = parser.parse_args(argv)

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    scratch = tempfile.TemporaryDirectory(prefix="bench-embedding-widget-")
    # an empty cache folder: embeddings and converted models
    os.environ["ORANGE_IMAGEANALYTICS_CACHE_DIR"] = scratch.name

    from AnyQt.QtWidgets import QApplication

    from orangecontrib.imageanalytics.embedders.cache import clear_cache
    from orangecontrib.imageanalytics.import_images import ImportImages
    from orangecontrib.imageanalytics.widgets.owimageembedding import (
        OWImageEmbedding,
    )

    app = QApplication.instance() or QApplication([])
    table, n_skipped = ImportImages()(args.folder)
    if table is None:
        sys.exit(f"no images in {args.folder}")
    print(f"command: python benchmarks/bench_embedding_widget.py "
          f"{' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"machine: nproc={os.cpu_count()}, load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{len(table)} images ({n_skipped} skipped by Import Images), "
          f"model {args.model}")

    def one_run(label: str, cancel_after: float | None = None) -> None:
        widget = OWImageEmbedding()
        widget.embedder = args.model
        sent = []
        send = widget.Outputs.embeddings.send
        widget.Outputs.embeddings.send = \
            lambda value, *a: (sent.append(value), send(value, *a))
        start = time.perf_counter()
        widget.set_data(table)
        widget.handleNewSignals()
        input_call = time.perf_counter() - start
        longest, calls, cancelled_at = 0.0, 0, None
        deadline = start + args.limit
        while widget.task is not None and time.perf_counter() < deadline:
            if cancel_after is not None and cancelled_at is None \
                    and time.perf_counter() - start >= cancel_after:
                cancelled_at = time.perf_counter()
                t0 = time.perf_counter()
                widget.cancel_embedding()
                longest = max(longest, time.perf_counter() - t0)
                continue
            t0 = time.perf_counter()
            app.processEvents()
            longest = max(longest, time.perf_counter() - t0)
            calls += 1
            time.sleep(0.002)
        end = time.perf_counter()
        got = [v for v in sent if v is not None]
        if cancelled_at is not None:
            # the worker threads must stop too, not only the widget: CPU
            # this process uses in the second after the widget is idle
            cpu = time.process_time()
            time.sleep(1.0)
            after = time.process_time() - cpu
            what = (f"cancelled after {cancelled_at - start:.2f} s, idle "
                    f"{1000 * (end - cancelled_at):.0f} ms later; "
                    f"outputs {'cleared' if not got else 'SENT'}; CPU in "
                    f"the next second {1000 * after:.0f} ms")
        elif got:
            what = (f"{len(got[-1])} rows on the output after "
                    f"{end - start:.2f} s ({widget.status_label.text()})")
        else:
            what = f"no output after {end - start:.1f} s"
        print(f"{label:7}: input call {1000 * input_call:.0f} ms; {what}; "
              f"longest GUI call {1000 * longest:.0f} ms over {calls} calls",
              flush=True)
        widget.onDeleteWidget()
        widget.deleteLater()
        app.processEvents()

    one_run("cold")
    one_run("cached")
    clear_cache()
    one_run("cancel", cancel_after=args.cancel_after)
    scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
