"""Review Images' thumb matcher against a plain implementation: every
window of one photo centred and normalised, correlated with the zoomed
middles of the other."""
import numpy as np
import pytest
from PIL import Image
from review_fixtures import scene

from orangecontrib.imageanalytics.review_measures import (
    MATCH_SIDE,
    MATCH_WINDOW,
    MATCH_ZOOMS,
    THUMB_SIDE,
    Matcher,
)


def thumb(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("L").resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BOX))


def plain_match(a: np.ndarray, b: np.ndarray) -> tuple[float, int, float]:
    """(score, shift, zoom), computed the long way."""
    def zoomed(t, zoom):
        side = THUMB_SIDE * zoom
        offset = (THUMB_SIDE - side) / 2
        im = Image.fromarray(t.astype(np.float32), mode="F").resize(
            (MATCH_SIDE, MATCH_SIDE), Image.Resampling.BILINEAR,
            box=(offset, offset, offset + side, offset + side))
        return np.asarray(im, dtype=np.float64)

    def unit(v):
        v = v - v.mean()
        norm = np.linalg.norm(v)
        return v / norm if norm > 1e-3 else v * 0

    cut = (MATCH_SIDE - MATCH_WINDOW) // 2
    positions = MATCH_SIDE - MATCH_WINDOW + 1
    middle = (positions - 1) // 2
    best = (0.0, 0, 1.0)
    for one, other in ((a, b), (b, a)):
        image = zoomed(other, 1.0)
        for zoom in MATCH_ZOOMS:
            template = unit(zoomed(one, zoom)[cut:cut + MATCH_WINDOW, cut:cut + MATCH_WINDOW])
            for y in range(positions):
                for x in range(positions):
                    window = unit(image[y:y + MATCH_WINDOW, x:x + MATCH_WINDOW])
                    score = float((template * window).sum())
                    if score > best[0]:
                        best = (score, max(abs(y - middle), abs(x - middle)), zoom)
    return best


def pairs():
    base = scene(3, size=(320, 240))
    yield "same", base, base
    yield "shifted", base, base.crop((10, 0, 320, 240)).resize((320, 240))
    yield "cropped", base, base.crop((24, 18, 296, 222))
    yield "other scene", base, scene(4, size=(320, 240))
    yield "flat", base, Image.new("RGB", (320, 240), (90, 90, 90))


@pytest.mark.parametrize("name, a, b", list(pairs()), ids=[p[0] for p in pairs()])
def test_matcher_equals_the_plain_correlation(name, a, b):
    ta, tb = thumb(a), thumb(b)
    found = Matcher([ta, tb]).match(0, 1)
    score, shift, zoom = plain_match(ta, tb)
    assert found.score == pytest.approx(score, abs=1e-4)
    if score > 0:
        assert (found.shift, found.zoom) == (shift, zoom)
    if name == "same":
        assert found.score == pytest.approx(1.0, abs=1e-4)
        assert (found.shift, found.zoom) == (0, 1.0)
    if name == "cropped":
        assert found.zoom < 1.0
    if name == "flat":
        assert found.score == 0.0


def test_matcher_keeps_what_it_prepared_and_gives_the_same_answers():
    thumbs = [thumb(scene(s, size=(160, 120))) for s in range(6)]
    small = Matcher(thumbs, keep=2)
    large = Matcher(thumbs)
    for i in range(6):
        for j in range(6):
            assert small.match(i, j) == large.match(i, j)
    assert len(small._prepared) == 2
