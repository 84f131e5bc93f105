import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fakes import FakeRunner
from Orange.data import Table
from PIL import Image

from orangecontrib.imageanalytics.__main__ import main
from orangecontrib.imageanalytics.embedders import engines
from orangecontrib.imageanalytics.embedders.cache import CACHE_DIR_ENV

DIM = 1000


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))


@pytest.fixture
def fake_runner(monkeypatch):
    monkeypatch.setattr(engines, "get_runner",
                        lambda spec, **_: FakeRunner())


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for rel in ("cats/a.jpg", "cats/b.jpg", "dogs/c.png"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)) \
            .save(path)
    (root / "dogs" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return root


def test_embed_folder(folder, tmp_path, fake_runner, capsys):
    out = tmp_path / "out.tab"
    skipped = tmp_path / "skipped.tab"
    assert main(["embed", str(folder), "-o", str(out), "--skipped",
                 str(skipped)]) == 0
    table = Table.from_file(str(out))
    assert len(table) == 3
    names = [var.name for var in table.domain.attributes]
    assert names == [f"n{i}" for i in range(DIM)]
    assert table.domain.class_var.name == "category"
    assert "image" in table.domain
    err = capsys.readouterr().err
    assert "Embedded 3 images" in err
    assert "broken.jpg" in err


def test_embed_table_and_never_overwrite_input(folder, tmp_path, fake_runner,
                                               capsys):
    first = tmp_path / "first.tab"
    assert main(["embed", str(folder), "-o", str(first), "-q"]) == 0
    before = first.read_bytes()
    assert main(["embed", str(first), "-o", str(first), "-q"]) == 2
    assert "input file" in capsys.readouterr().err
    assert first.read_bytes() == before

    # a table with an image column: re-embedding adds unique column names
    second = tmp_path / "second.csv"
    assert main(["embed", str(first), "-o", str(second), "-q",
                 "--no-cache"]) == 0
    table = Table.from_file(str(second))
    assert len(table) == 3
    assert len(table.domain.attributes) == 2 * DIM


def test_errors(folder, tmp_path, fake_runner, capsys):
    out = str(tmp_path / "out.tab")
    assert main(["embed", str(folder), "-o", out, "--model", "nope"]) == 2
    assert "squeezenet" in capsys.readouterr().err
    assert main(["embed", str(tmp_path / "missing"), "-o", out]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["embed", str(folder), "-o", str(tmp_path / "x.weird")]) == 2
    assert "extension" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["embed", str(empty), "-o", out]) == 1
    assert "no images" in capsys.readouterr().err
    only_broken = tmp_path / "broken"
    only_broken.mkdir()
    (only_broken / "x.jpg").write_bytes(b"\xff\xd8\xff\xe0")
    assert main(["embed", str(only_broken), "-o", out]) == 1
    assert not Path(out).exists()
    assert main([]) == 2


def test_command_line_end_to_end(folder, tmp_path):
    """The real thing: a new process, the real model."""
    out = tmp_path / "out.tab"
    proc = subprocess.run(
        [sys.executable, "-m", "orangecontrib.imageanalytics", "embed",
         str(folder), "-o", str(out)],
        check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Skipped 1" in proc.stderr
    table = Table.from_file(str(out))
    assert len(table) == 3 and np.isfinite(table.X).all()


def test_failed_write_keeps_the_previous_output(folder, tmp_path, fake_runner,
                                                monkeypatch, capsys):
    """A write that fails half way (disk full, Ctrl+C) leaves the user's
    earlier output file as it was, and no temporary file behind."""
    from Orange.data.io import TabReader
    out = tmp_path / "out.tab"
    out.write_text("precious results of an earlier run\n")

    def disk_full(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(TabReader, "write_data", disk_full)
    assert main(["embed", str(folder), "-o", str(out), "-q"]) == 1
    assert "No space left" in capsys.readouterr().err
    assert out.read_text() == "precious results of an earlier run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) \
        == sorted(["cache", "out.tab", "photos"])


def test_output_written_with_usual_permissions(folder, tmp_path, fake_runner):
    out = tmp_path / "out.tab"
    reference = tmp_path / "reference.txt"
    reference.write_text("")
    assert main(["embed", str(folder), "-o", str(out), "-q"]) == 0
    assert out.stat().st_mode == reference.stat().st_mode


def test_skipped_file_is_current_when_nothing_is_skipped(tmp_path,
                                                         fake_runner):
    """An earlier run's skipped rows must not look like this run's."""
    root = tmp_path / "good"
    root.mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (20, 20), name[0] == "a" and "red" or "blue") \
            .save(root / name)
    out, skipped = tmp_path / "out.tab", tmp_path / "skipped.tab"
    skipped.write_text("stale rows of an earlier run\n")
    assert main(["embed", str(root), "-o", str(out), "--skipped",
                 str(skipped), "-q"]) == 0
    table = Table.from_file(str(skipped))
    assert len(table) == 0
    assert "skip reason" in table.domain
