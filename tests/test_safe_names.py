"""Names that are one legal path component on Windows, macOS and Linux."""
import os

import pytest

from orangecontrib.imageanalytics.safe_names import (
    EMPTY_NAME,
    FolderNames,
    is_inside,
    name_key,
    safe_component,
)

WINDOWS_ILLEGAL = set('<>:"/\\|?*') | {chr(i) for i in range(32)}


def assert_legal(name):
    assert name
    assert name not in (".", "..")
    assert not WINDOWS_ILLEGAL & set(name), name
    assert not name.endswith((".", " ")), name
    assert not name.startswith("."), name
    assert len(name.encode("utf-8")) <= 255
    assert name.split(".")[0].rstrip(" ").upper() not in {
        "CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)),
        *(f"LPT{i}" for i in range(10))}


@pytest.mark.parametrize("value, expected", [
    ("cats", "cats"),
    ("../x", "_._x"),
    ("..", EMPTY_NAME),
    (".", EMPTY_NAME),
    ("a/b", "a_b"),
    ("a\\b", "a_b"),
    ("CON", "CON_"),
    ("con", "con_"),
    ("Lpt1", "Lpt1_"),
    ("CON.tar", "CON_.tar"),
    ("NUL ", "NUL_"),
    ("COM\u00b9", "COM\u00b9_"),
    ("CONSOLE", "CONSOLE"),
    (" ", EMPTY_NAME),
    ("", EMPTY_NAME),
    ("name. . ", "name"),
    (".hidden", "_hidden"),
    ("tab\there", "tab_here"),
    ("what?", "what_"),
    ("C:", "C_"),
    ("Škofja Loka 日本", "Škofja Loka 日本"),
    (3.5, "3.5"),
])
def test_safe_component(value, expected):
    name = safe_component(value)
    assert name == expected
    assert_legal(name)


def test_unicode_normalised_to_nfc():
    decomposed = "c\u030cebela"  # "čebela" as macOS spells file names
    assert safe_component(decomposed) == "\u010debela"


def test_long_names_cut_at_a_character_boundary():
    name = safe_component("ž" * 300)
    assert_legal(name)
    assert len(name.encode("utf-8")) <= 200
    assert set(name) == {"ž"}


def test_every_byte_gives_a_legal_name():
    for i in range(0x80):
        assert_legal(safe_component(f"{chr(i)}x{chr(i)}"))
        assert_legal(safe_component(chr(i)))


def test_name_key_compares_as_macos_and_windows_do():
    assert name_key("Cats.PNG") == name_key("cats.png")
    assert name_key("c\u030cebela") == name_key("\u010cebela")
    assert name_key("a") != name_key("b")


def test_folder_names_reads_entries_and_finds_clashes(tmp_path):
    (tmp_path / "Tom.png").write_bytes(b"x")
    names = FolderNames(str(tmp_path))
    assert names.existing("tom.PNG") == "Tom.png"
    assert names.existing("felix.png") is None
    names.add("felix.png")
    assert names.existing("FELIX.png") == "felix.png"
    assert FolderNames(str(tmp_path / "missing")).existing("a") is None


def test_candidates_are_numbered_from_two():
    gen = FolderNames.candidates("a.b", ".png")
    assert [next(gen) for _ in range(3)] == ["a.b.png", "a.b-2.png", "a.b-3.png"]


def test_is_inside_resolves_links(tmp_path):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    assert is_inside(str(root / "a" / "b.png"), str(root))
    assert not is_inside(str(root / ".." / "b.png"), str(root))
    assert not is_inside(str(root), str(root))
    os.symlink(outside, root / "link")
    assert not is_inside(str(root / "link" / "b.png"), str(root))
