"""Command line: ``python -m orangecontrib.imageanalytics embed ...``.

Embed a folder of images (or the image column of a data file) and write an
Orange data file with the vectors::

    python -m orangecontrib.imageanalytics embed photos -o embeddings.tab
    python -m orangecontrib.imageanalytics embed images.tab -o out.tab \\
        --model inception-v3 --server-url http://gpu-box:8000

Download the weights of a server model so that it runs on this computer
(then ``--model inception-v3-local``)::

    python -m orangecontrib.imageanalytics download inception-v3
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TextIO

from orangecontrib.imageanalytics.command_files import (
    FAILED,
    INTERRUPTED,
    OK,
    USAGE,
    CommandError,
    check_output,
    load_input,
    save_table,
)
from orangecontrib.imageanalytics.counts_text import count_reasons

__all__ = ["main"]

# skipped files listed one by one in the summary; the rest are counted
_MAX_LISTED = 20


class _TerminalProgress:
    """Progress on a terminal (tqdm's bar when it is installed), occasional
    lines otherwise; subclasses say what to show."""

    def __init__(self, label: str, stream: TextIO, **tqdm_options):
        self.label = label
        self.stream = stream
        self.start = time.monotonic()
        self.last = 0.0
        self.tty = hasattr(stream, "isatty") and stream.isatty()
        self._tqdm = None
        if self.tty:
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self._tqdm = tqdm(desc=label, file=stream, **tqdm_options)

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
        elif self.tty:
            self.stream.write("\n")
            self.stream.flush()


class ProgressBar(_TerminalProgress):
    """Images embedded: a progress bar on a terminal, occasional lines
    otherwise."""

    def __init__(self, label: str, stream: TextIO = sys.stderr):
        super().__init__(label, stream, unit="img")
        self.shown: tuple[int, int] | None = None

    def __call__(self, done: int, total: int) -> None:
        if self._tqdm is not None:
            self._tqdm.total = total
            self._tqdm.update(done - self._tqdm.n)
            return
        now = time.monotonic()
        # a terminal redraws in place; a log file gets a line every 5 s
        if done < total and now - self.last < (0.2 if self.tty else 5.0):
            return
        if done == total and self.shown == (done, total):
            return   # the final state is reported once
        self.last = now
        self.shown = (done, total)
        elapsed = now - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        text = f"{self.label}: {done}/{total} images, {rate:.1f} images/s"
        if self.tty:
            width = 30
            filled = width * done // total if total else width
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {done}/{total} "
                              f"({rate:.1f} images/s)")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()



def _parser() -> argparse.ArgumentParser:
    from orangecontrib.imageanalytics.embedders.registry import (
        DEFAULT_EMBEDDER,
        PUBLIC_SERVER_URL,
        embedder_keys,
    )
    parser = argparse.ArgumentParser(
        prog="python -m orangecontrib.imageanalytics",
        description="Orange Image Analytics from the command line.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    embed = commands.add_parser(
        "embed", help="embed images into vectors",
        description="Embed a folder of images, or the image column of a "
                    "data file (.tab, .csv, ...), and write the table with "
                    "the vectors as columns n0, n1, ...")
    embed.add_argument("input", metavar="FOLDER_OR_TABLE",
                       help="folder of images, or a data file with an image "
                            "column")
    embed.add_argument("-o", "--output", required=True, metavar="OUT",
                       help="data file to write (.tab, .csv, .pkl, ...)")
    embed.add_argument("--model", default=DEFAULT_EMBEDDER,
                       help=f"embedder: {', '.join(embedder_keys())} "
                            f"(default: {DEFAULT_EMBEDDER})")
    embed.add_argument("--server-url", metavar="URL",
                       help="embedding server for server models (default: "
                            "$ORANGE_EMBEDDING_API_URL, else Orange's public "
                            f"server, {PUBLIC_SERVER_URL}: the images then "
                            "leave this computer; the address is printed "
                            "before they are sent)")
    embed.add_argument("--column", metavar="NAME",
                       help="image column of a data file (default: the "
                            "column marked type=image)")
    embed.add_argument("--skipped", metavar="FILE",
                       help="also write the skipped files and rows with "
                       "their reason")
    embed.add_argument("--exact", action="store_true",
                       help="decode every pixel before resizing (slower)")
    embed.add_argument("--no-cache", action="store_true",
                       help="neither read nor write the embedding cache")
    embed.add_argument("-q", "--quiet", action="store_true",
                       help="no progress bar")

    download = commands.add_parser(
        "download", help="download a model's weights to run it here",
        description="Download the weights of server models (Inception v3, "
                    "VGG16, VGG19) into the weights folder, so that their "
                    "local copies (e.g. --model inception-v3-local) run on "
                    "this computer.  An interrupted download resumes where "
                    "it stopped; the file is kept only if its SHA-256 "
                    "matches.  The folder is $ORANGE_EMBEDDING_WEIGHTS_DIR "
                    "or the user's data folder.")
    download.add_argument("models", nargs="+", metavar="MODEL",
                          help="models whose weights to download: "
                               + ", ".join(downloadable_keys()))
    download.add_argument("--url", metavar="URL",
                          help="download from this address (a mirror) "
                               "instead; only with one MODEL")
    download.add_argument("-q", "--quiet", action="store_true",
                          help="no progress")
    from orangecontrib.imageanalytics.review_command import add_parser as add_review
    add_review(commands)
    return parser


def downloadable_keys() -> list[str]:
    """Keys of the server models whose weights can be downloaded."""
    from orangecontrib.imageanalytics.embedders.registry import LOCAL_COPIES
    return [spec.server_key for spec in LOCAL_COPIES.values()]


class ByteProgress(_TerminalProgress):
    """Progress of a download: a bar on a terminal, a line every 5 s
    otherwise."""

    def __init__(self, label: str, stream: TextIO | None = None):
        super().__init__(label, stream or sys.stderr, unit="B", unit_scale=True,
                         unit_divisor=1024)
        self.first: int | None = None

    def __call__(self, done: int, total: int | None) -> None:
        if self.first is None:
            self.first = done   # a resumed download starts with its part
        if self._tqdm is not None:
            self._tqdm.total = total
            self._tqdm.update(done - self._tqdm.n)
            return
        now = time.monotonic()
        if done != total and now - self.last < (0.2 if self.tty else 5.0):
            return
        self.last = now
        elapsed = now - self.start
        rate = (done - self.first) / elapsed / 1e6 if elapsed > 0 else 0.0
        of = f" of {total / 1e6:.1f}" if total else ""
        resumed = f", resumed at {self.first / 1e6:.1f} MB" \
            if self.first else ""
        text = (f"{self.label}: {done / 1e6:.1f}{of} MB "
                f"({rate:.1f} MB/s{resumed})")
        self.stream.write(f"\r{text}" if self.tty else text + "\n")
        self.stream.flush()



def _download(args: argparse.Namespace) -> int:
    from orangecontrib.imageanalytics.embedders.errors import EmbeddingError
    from orangecontrib.imageanalytics.embedders.registry import get_embedder
    from orangecontrib.imageanalytics.embedders.weights import (
        check_weights_file,
        download_weights,
        weights_path,
    )
    keys = downloadable_keys()
    specs = []
    for name in args.models:
        try:
            spec = get_embedder(name)
        except ValueError:
            spec = None
        key = spec and (spec.server_key or spec.key)
        if key not in keys:
            raise CommandError(
                f"cannot download {name!r}: the models with weights to "
                f"download are {', '.join(keys)}", USAGE)
        specs.append(get_embedder(key))
    if args.url and len(specs) > 1:
        raise CommandError("--url needs exactly one MODEL", USAGE)
    failed = 0
    for spec in dict.fromkeys(specs):
        path = weights_path(spec)
        try:
            check_weights_file(spec)
        except EmbeddingError:
            pass
        else:
            print(f"{spec.label}: {path} is already here (SHA-256 checked).",
                  file=sys.stderr)
            continue
        progress = None if args.quiet else ByteProgress(spec.label)
        try:
            download_weights(spec, url=args.url, progress=progress)
        except EmbeddingError as exc:
            # DownloadError, DownloadCancelled: the message says what to do
            if progress is not None:
                progress.close()
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        if progress is not None:
            progress.close()
        print(f"{spec.label}: saved {path} (SHA-256 checked); embed with "
              f"--model {spec.key}-local or choose \"{spec.label} (local)\" "
              "in the Image Embedding widget.", file=sys.stderr)
    return FAILED if failed else OK


def _display_value(var, value) -> str:
    if var.is_discrete:
        return var.str_val(value)
    return str(value) if value else "(no path)"


def _summary(n_embedded: int, skipped: list[tuple[str, str]], label: str,
             elapsed: float, stream: TextIO) -> None:
    rate = f", {n_embedded / elapsed:.1f} images/s" if elapsed > 0 else ""
    print(f"Embedded {n_embedded} images with {label} in {elapsed:.1f} s"
          f"{rate}.", file=stream)
    if not skipped:
        return
    print(f"Skipped {len(skipped)}:", file=stream)
    for path, reason in skipped[:_MAX_LISTED]:
        print(f"  {path}: {reason}", file=stream)
    if len(skipped) > _MAX_LISTED:
        rest = count_reasons(reason for _, reason in skipped[_MAX_LISTED:])
        print(f"  ... and {len(skipped) - _MAX_LISTED} more:", file=stream)
        for reason, count in rest:
            print(f"    {count:,} × {reason}", file=stream)


def _empty_skipped(table):
    """The skipped-rows table of a run that skipped nothing."""
    import numpy as np

    from orangecontrib.imageanalytics.image_embedder import with_reasons
    return with_reasons(table, np.array([], dtype=int), [])


def _scan_skipped_rows(domain, image_var, scan_skipped):
    """Rows in the skipped table's ``domain`` for the files skipped while the
    folder was scanned.

    Such a file has no row in the imported table, so a row holds what is
    known of it: its path (relative to the folder, as the image column's
    values are), its name, its sub-folder as the category when that is one
    of the category's values, and the reason; the rest is unknown.
    """
    import numpy as np
    from Orange.data import Table

    from orangecontrib.imageanalytics.import_images import (
        CATEGORY,
        IMAGE_NAME,
    )
    n = len(scan_skipped)
    X = np.full((n, len(domain.attributes)), np.nan)
    Y = np.full((n, len(domain.class_vars)), np.nan)
    metas = np.empty((n, len(domain.metas)), dtype=object)
    for col, var in enumerate(domain.metas):
        metas[:, col] = var.Unknown
    reason_col = len(domain.metas) - 1   # the reason is the last meta
    for row, (path, reason) in enumerate(scan_skipped):
        folder, _, name = path.rpartition("/")
        for col, var in enumerate(domain.metas):
            if var is image_var:    # a folder's: a string column
                metas[row, col] = path
            elif var.name == IMAGE_NAME and var.is_string:
                metas[row, col] = os.path.splitext(name)[0]
        metas[row, reason_col] = reason
        for col, var in enumerate(domain.class_vars):
            if var.name == CATEGORY and var.is_discrete \
                    and (folder or ".") in var.values:
                Y[row, col] = var.to_val(folder or ".")
    return Table.from_numpy(domain, X, Y, metas=metas)


def _embed(args: argparse.Namespace) -> int:
    from orangecontrib.imageanalytics.embedders.registry import get_embedder
    try:
        spec = get_embedder(args.model)
    except ValueError as exc:
        raise CommandError(str(exc), USAGE) from None
    check_output(args.output, [args.input])
    if args.skipped:
        check_output(args.skipped, [args.input, args.output])

    table, import_skipped = load_input(args.input, args.quiet)
    from orangecontrib.imageanalytics.image_embedder import (
        ImageEmbedder,
        image_column,
    )
    try:
        var = image_column(table, args.column)
    except ValueError as exc:
        raise CommandError(f"{args.input}: {exc}", USAGE) from None

    embedder = ImageEmbedder(spec.key, args.server_url,
                             cache=not args.no_cache, exact=args.exact)
    if not spec.local:
        from orangecontrib.imageanalytics.embedders.registry import (
            PUBLIC_SERVER_URL,
            client_server_url,
        )
        url = client_server_url(args.server_url)
        print(f"Sending the images to {url}"
              + (" (Orange's public server: they leave this computer)"
                 if url.rstrip("/") == PUBLIC_SERVER_URL else ""),
              file=sys.stderr)
    if not args.quiet:
        where = "on this computer" if spec.local else "on the server"
        print(f"Embedding {len(table)} images with {spec.label} "
              f"{where} ...", file=sys.stderr)
    progress = None if args.quiet else ProgressBar("Embedding")
    start = time.monotonic()
    try:
        embedded, skipped, _ = embedder.embed_table(table, var,
                                                    progress=progress)
    finally:
        if progress is not None:
            progress.close()
        embedder.close()
    elapsed = time.monotonic() - start

    failed = list(import_skipped)
    if skipped is not None:
        # the reason is the last meta column of the skipped table
        values = skipped.get_column(skipped.domain[var.name])
        reasons = skipped.get_column(skipped.domain.metas[-1])
        failed += [(_display_value(var, value), reason)
                   for value, reason in zip(values, reasons)]
    _summary(0 if embedded is None else len(embedded), failed,
             spec.display_name, elapsed, sys.stderr)
    if embedded is None:
        raise CommandError("no image could be embedded; nothing written")
    save_table(embedded, args.output)
    print(f"Wrote {len(embedded)} rows to {args.output}", file=sys.stderr)
    if args.skipped:
        if skipped is None:
            # written even when empty: a file left by an earlier run must
            # not pass for this run's skipped rows
            skipped = _empty_skipped(table)
        if import_skipped:
            # first, as the summary lists them
            from Orange.data import Table
            skipped = Table.concatenate([
                _scan_skipped_rows(skipped.domain, var, import_skipped),
                skipped])
        save_table(skipped, args.skipped)
        print(f"Wrote {len(skipped)} skipped rows to {args.skipped}",
              file=sys.stderr)
    return OK


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return USAGE
    if args.command == "review":
        from orangecontrib.imageanalytics.review_command import run as review
        return review(args)
    from orangecontrib.imageanalytics.embedders.errors import EmbeddingError
    try:
        if args.command == "download":
            return _download(args)
        return _embed(args)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except EmbeddingError as exc:
        # model missing, server unreachable, ...: the message says what to do
        print(f"error: {exc}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        print("\ninterrupted; finished vectors are kept in the cache",
              file=sys.stderr)
        return INTERRUPTED
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return FAILED


if __name__ == "__main__":
    sys.exit(main())
