"""Tooltips wrap at a readable width, whatever the text."""
from orangecontrib.imageanalytics.widgets.utils.tooltips import (
    TOOLTIP_WIDTH,
    wrapped_tooltip,
)


def lines(tooltip: str) -> list[str]:
    body = tooltip.removeprefix("<p>").removesuffix("</p>")
    return [line for paragraph in body.split("</p><p>")
            for line in paragraph.split("<br/>")]


def test_lines_are_at_most_the_width():
    text = ("Cannot download https://download.pytorch.org/models/"
            "vgg16-397923af.pth: the name of the server cannot be looked up "
            "([Errno -2] Name or service not known). " * 3)
    tooltip = wrapped_tooltip(text)
    assert tooltip.startswith("<p>")    # rich text: Qt renders the breaks
    assert len(lines(tooltip)) > 3
    assert max(map(len, lines(tooltip))) <= TOOLTIP_WIDTH
    assert " ".join(lines(tooltip)).split() == text.split()


def test_paragraphs_stay_and_long_words_break():
    path = "/home/someone/" + "a" * 100 + "/weights.pth"
    tooltip = wrapped_tooltip(f"First line.\nSaved as {path}", width=40)
    assert tooltip.startswith("<p>First line.</p><p>Saved as")
    assert max(map(len, lines(tooltip))) <= 40
    assert "".join(lines(tooltip)[1:]) == f"Saved as {path}"


def test_text_is_escaped():
    assert wrapped_tooltip("a <b> & c") == "<p>a &lt;b&gt; &amp; c</p>"


def test_empty_text_removes_the_tooltip():
    assert wrapped_tooltip("") == ""
    assert wrapped_tooltip(" \n ") == ""
