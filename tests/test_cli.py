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


def test_skipped_file_holds_every_skipped_file(folder, tmp_path, fake_runner,
                                               capsys):
    """Files skipped while the folder is scanned (not an image inside) are
    written to --skipped beside the rows skipped while embedding (a cut
    JPEG whose header reads well), each with its path and its reason, as
    the console lists them."""
    big = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(1).integers(
        0, 255, (300, 400, 3), dtype=np.uint8)).save(big)
    (folder / "cats" / "cut.jpg").write_bytes(big.read_bytes()[:3000])
    (folder / "notes.txt").write_text("not an image, not reported")
    out, skipped = tmp_path / "out.tab", tmp_path / "skipped.tab"
    assert main(["embed", str(folder), "-o", str(out), "--skipped",
                 str(skipped), "--no-cache"]) == 0
    err = capsys.readouterr().err
    assert "dogs/broken.jpg: " in err and "cats/cut.jpg: " in err

    table = Table.from_file(str(skipped))
    assert len(Table.from_file(str(out))) == 3
    assert "Wrote 2 skipped rows" in err
    image = table.domain["image"]
    rows = {value: (reason, name, category)
            for value, reason, name, category in zip(
                table.get_column(image), table.get_column("skip reason"),
                table.get_column("image name"),
                [table.domain.class_var.str_val(y) for y in table.Y])}
    assert sorted(rows) == ["cats/cut.jpg", "dogs/broken.jpg"]
    for value, (reason, name, category) in rows.items():
        assert f"{value}: {reason}" in err     # the console's reason
        assert reason
        assert name == value.rpartition("/")[2].rpartition(".")[0]
        assert category == value.partition("/")[0]
    # the paths resolve against the folder, as the embedded rows' do
    assert image.attributes["type"] == "image"
    assert Path(image.attributes["origin"]) == folder


#: Pictures that installed packages ship: every installation has them.
SHIPPED_PICTURES = (
    ("sklearn.datasets", "images/china.jpg"),
    ("sklearn.datasets", "images/flower.jpg"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    ("ndf", "tests/book-2020460_640.jpg"),
)


@pytest.mark.parametrize(("model", "figure"), [("squeezenet", 0.998),
                                               ("efficientnet-lite0", 0.99)])
def test_default_path_within_the_stated_cosine_of_exact(model, figure,
                                                         tmp_path):
    """The figure the README gives for ``embed`` without ``--exact`` (and
    the ImageEmbedder docstring for ``exact=False``): the fast path's vectors
    lie within this cosine of the exact path's, on photos at web size
    (640×480) and camera size (4000×3000, where JPEG draft decoding scales
    by 1/8)."""
    import importlib.resources

    folder = tmp_path / "photos"
    folder.mkdir()
    for package, resource in SHIPPED_PICTURES:
        with importlib.resources.as_file(importlib.resources.files(package)
                                         .joinpath(resource)) as path, \
                Image.open(path) as picture:
            picture = picture.convert("RGB")
            stem = Path(resource).stem
            for width, height in ((640, 480), (4000, 3000)):
                picture.resize((width, height), Image.Resampling.BICUBIC) \
                    .save(folder / f"{stem}-{width}.jpg", quality=90)
    tables = []
    for exact in ([], ["--exact"]):
        out = tmp_path / f"out{len(exact)}.tab"
        assert main(["embed", str(folder), "-o", str(out), "-q",
                     "--no-cache", "--model", model] + exact) == 0
        tables.append(Table.from_file(str(out)))
    fast, exact = tables
    assert len(fast) == len(exact) == 2 * len(SHIPPED_PICTURES)
    assert list(fast.get_column("image")) == list(exact.get_column("image"))
    cosines = (fast.X * exact.X).sum(axis=1) \
        / np.linalg.norm(fast.X, axis=1) / np.linalg.norm(exact.X, axis=1)
    assert cosines.min() >= figure, dict(zip(fast.get_column("image"),
                                             cosines))
    # the paths differ: the figure measures something
    assert cosines.min() < 0.99999


# --- download ---------------------------------------------------------------

@pytest.fixture
def weights_file():
    """A file served on 127.0.0.1 as the VGG16 weights, the registry's
    VGG16 spec naming its SHA-256; yields (url, handler, weights folder)."""
    import dataclasses
    import hashlib
    import os

    from file_server import serve_file

    from orangecontrib.imageanalytics.embedders import registry
    from orangecontrib.imageanalytics.embedders.weights import (
        default_weights_dir,
    )
    payload = np.random.default_rng(3).bytes(1_500_000)
    spec = registry.EMBEDDERS["vgg16"]
    patched = dataclasses.replace(spec, weights=dataclasses.replace(
        spec.weights, sha256=hashlib.sha256(payload).hexdigest()))
    with pytest.MonkeyPatch.context() as patch, serve_file(payload) as (
            url, handler):
        patch.setitem(registry.EMBEDDERS, "vgg16", patched)
        folder = default_weights_dir()
        yield f"{url}/w.pth", handler, folder, payload
        target = folder / spec.weights.filename
        for path in (target, target.with_name(target.name + ".part")):
            if path.exists():
                os.remove(path)


def test_download_weights(weights_file, capsys):
    url, handler, folder, payload = weights_file
    assert main(["download", "vgg16", "--url", url]) == 0
    target = folder / "vgg16-397923af.pth"
    assert target.read_bytes() == payload
    err = capsys.readouterr().err
    assert "1.5 of 1.5 MB" in err          # progress, ending at the total
    assert "SHA-256 checked" in err and "vgg16-local" in err
    # present and checked: nothing is downloaded again; the local name works
    assert main(["download", "vgg16-local", "--url", url]) == 0
    assert "already here" in capsys.readouterr().err
    assert handler.ranges == [None]


def test_download_resumes(weights_file, capsys):
    url, handler, folder, payload = weights_file
    # the first try and three resumes break off
    handler.drop_after, handler.drops = 200_000, 4
    assert main(["download", "vgg16", "--url", url, "-q"]) == 1
    err = capsys.readouterr().err
    assert "error:" in err and "download again to resume" in err
    handler.drops = 0
    assert main(["download", "vgg16", "--url", url]) == 0
    assert (folder / "vgg16-397923af.pth").read_bytes() == payload
    assert handler.ranges[-1] == f"bytes={4 * 200_000}-"
    assert "resumed at 0.8 MB" in capsys.readouterr().err


def test_download_failures(weights_file, capsys):
    url, _, folder, _ = weights_file
    assert main(["download", "vgg16", "--url", url + ".missing"]) == 1
    assert "HTTP 404" in capsys.readouterr().err
    # the registry's own hash for VGG19 does not fit the served file
    assert main(["download", "vgg19", "--url", url, "-q"]) == 1
    err = capsys.readouterr().err
    assert "VGG-19" in err and "not the expected" in err
    assert not folder.exists() or not any(folder.iterdir())


@pytest.mark.parametrize("argv", [
    ["download", "squeezenet"], ["download", "nope"],
    ["download", "vgg16", "vgg19", "--url", "http://127.0.0.1:9/w.pth"]])
def test_download_usage_errors(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "inception-v3, vgg16, vgg19" in err or "exactly one" in err


def test_server_models_say_where_the_images_go(folder, tmp_path, capsys,
                                               monkeypatch):
    monkeypatch.delenv("ORANGE_EMBEDDING_API_URL", raising=False)
    with pytest.raises(SystemExit):
        main(["embed", "--help"])
    assert "Orange's public server" in " ".join(capsys.readouterr().out.split())
    # nothing listens on the discard port of this computer
    code = main(["embed", str(folder), "-o", str(tmp_path / "out.tab"),
                 "--model", "inception-v3", "--server-url",
                 "http://127.0.0.1:9", "--quiet"])
    assert code != 0
    assert "Sending the images to http://127.0.0.1:9" \
        in capsys.readouterr().err


def test_summary_counts_the_skipped_beyond_the_list():
    import io

    from orangecontrib.imageanalytics import __main__ as cli

    skipped = [(f"p{i}.jpg", "file not found" if i % 3 else "not an image")
               for i in range(cli._MAX_LISTED + 6)]
    out = io.StringIO()
    cli._summary(3, skipped, "SqueezeNet", 1.0, out)
    text = out.getvalue()
    assert f"Skipped {len(skipped)}:" in text
    assert "... and 6 more:" in text
    # the rest in the one form of skip reasons, most common first
    rest = [line.strip() for line in text.splitlines()[-2:]]
    assert rest == ["4 × file not found", "2 × not an image"]
