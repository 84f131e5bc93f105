"""Counts and skip reasons in the one form every message shows."""
from orangecontrib.imageanalytics.counts_text import (
    count_reasons,
    plural,
    reasons_text,
)


def test_plural():
    assert plural(1, "image") == "1 image"
    assert plural(0, "image") == "0 images"
    assert plural(2048, "image") == "2,048 images"
    assert plural(1, "category", "categories") == "1 category"
    assert plural(3, "category", "categories") == "3 categories"


def test_count_reasons_most_common_first():
    reasons = ["not an image", "file not found", "file not found", "HTTP 404"]
    assert count_reasons(reasons) == [("file not found", 2),
                                      ("not an image", 1), ("HTTP 404", 1)]
    assert count_reasons([]) == []
    assert len(count_reasons("abcde")) == 5   # every reason, not the first few
    # any iterable, e.g. a generator over skipped rows
    assert count_reasons(r for r in ("a", "a")) == [("a", 2)]


def test_reasons_text_puts_the_count_first():
    assert reasons_text([("file not found", 2), ("HTTP 404", 1)]) \
        == "2 × file not found, 1 × HTTP 404"
    assert reasons_text([(str(i), 1) for i in range(5)]) \
        == "1 × 0, 1 × 1, 1 × 2, …"
    assert reasons_text([(str(i), 1) for i in range(5)], limit=1) == "1 × 0, …"
    assert reasons_text([("x", 1200)]) == "1,200 × x"
    assert reasons_text([]) == ""
