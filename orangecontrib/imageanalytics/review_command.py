"""The ``review`` command: ``python -m orangecontrib.imageanalytics review``.

Prints the groups of duplicates (the suggested keeper first) and the flagged
photos of a folder (or of a data file's image column), and writes every row
annotated when ``-o`` is given::

    python -m orangecontrib.imageanalytics review photos
    python -m orangecontrib.imageanalytics review photos -o review.tab

It only reports: no image is ever deleted, moved or changed.
"""
from __future__ import annotations

import argparse
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

__all__ = ["STRICTNESS", "add_parser", "run"]

#: Command-line names of the strictness levels.
STRICTNESS = {"same-file": 0, "same-picture": 1, "near-duplicates": 2}


def add_parser(commands) -> argparse.ArgumentParser:
    """Add the ``review`` sub-command to ``commands`` (a subparsers action)."""
    review = commands.add_parser(
        "review", help="find duplicates and bad shots (reports only)",
        description="Group the photos that show the same picture (the "
                    "suggested keeper first) and list those that are "
                    "blurry, dark or overexposed. Nothing is deleted or moved.")
    review.add_argument("input", metavar="FOLDER_OR_TABLE",
                        help="folder of images, or a data file with an image column")
    review.add_argument("-o", "--output", metavar="OUT",
                        help="also write every row with the columns Group, "
                             "Kind, Keeper and Issues (.tab, .csv, ...)")
    review.add_argument("--strictness", choices=list(STRICTNESS),
                        default="near-duplicates",
                        help="what counts as a duplicate (default: "
                             "near-duplicates, which embeds the images with "
                             "SqueezeNet on this computer)")
    review.add_argument("--column", metavar="NAME",
                        help="image column of a data file (default: the "
                             "column marked type=image)")
    review.add_argument("-q", "--quiet", action="store_true", help="no progress")
    return review


def _label(table, var, row: int) -> str:
    value = table[row, var]
    return str(value) if str(value) not in ("", "?") else f"(row {row + 1}, no path)"


def print_review(review, table, var, stream: TextIO) -> None:
    """The groups, flags and skipped images, one per line."""
    from orangecontrib.imageanalytics.review import describe_issue
    print(f"{len(review.groups)} groups of duplicates "
          f"({len(review.duplicate_rows())} photos besides the keepers), "
          f"{len(review.issues)} flagged, {len(review.skipped)} not read.",
          file=stream)
    for index, (group, kinds) in enumerate(zip(review.groups, review.kinds), start=1):
        print(f"G{index}:", file=stream)
        for row, kind in zip(group, kinds):
            print(f"  {kind:<15} {_label(table, var, row)}", file=stream)
    if review.issues:
        print("Flagged:", file=stream)
        for row in sorted(review.issues):
            text = "; ".join(describe_issue(issue, review.issue_scores[row][issue])
                             for issue in review.issues[row])
            print(f"  {_label(table, var, row)}: {text}", file=stream)
    if review.skipped:
        print("Not read:", file=stream)
        for skip in review.skipped:
            print(f"  {_label(table, var, skip.row)}: {skip.reason}", file=stream)


def _progress(stream: TextIO):
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < 2.0:
            return
        last[0] = now
        stream.write(f"Reviewing: {100 * done // max(total, 1)} %\n")
        stream.flush()

    return progress


def run(args: argparse.Namespace) -> int:
    """Run ``review``; returns the exit code (errors are printed)."""
    try:
        return _run(args)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return INTERRUPTED
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return FAILED


def _run(args) -> int:
    from orangecontrib.imageanalytics.embedders.errors import EmbeddingError
    from orangecontrib.imageanalytics.review import review_images
    from orangecontrib.imageanalytics.table_images import image_column
    if args.output:
        check_output(args.output, [args.input])
    table, import_skipped = load_input(args.input, args.quiet)
    try:
        var = image_column(table, args.column)
    except ValueError as exc:
        raise CommandError(f"{args.input}: {exc}", USAGE) from None
    start = time.monotonic()
    try:
        review = review_images(table, image_column=var,
                               strictness=STRICTNESS[args.strictness],
                               progress=None if args.quiet else _progress(sys.stderr))
    except EmbeddingError as exc:
        raise CommandError(str(exc)) from None
    if not args.quiet:
        print(f"Reviewed {len(table)} images in {time.monotonic() - start:.1f} s.",
              file=sys.stderr)
    print_review(review, table, var, sys.stdout)
    for path, reason in import_skipped:
        print(f"  {path}: {reason} (not imported)", file=sys.stdout)
    if args.output:
        from orangecontrib.imageanalytics.review_tables import annotated_table
        save_table(annotated_table(table, review, var), args.output)
        print(f"Wrote {len(table)} rows to {args.output}", file=sys.stderr)
    return OK
