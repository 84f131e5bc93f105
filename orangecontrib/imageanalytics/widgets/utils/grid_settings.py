"""Image Grid's stored settings: the forms older workflows hold, moved to the
current ones.

Version history of the widget's settings:

- none / 1 (the older add-on): ``cell_fit`` as 0/1, ``rows`` and ``columns``
  possibly numpy integers, ``imageAttr`` an index into the image columns
  (:func:`~.grid_rows.image_candidates`), ``label_attr`` with the variable
  types of old Orange (< 100).
- 2: ``selection`` a list with one group per row.
- 3: ``imageAttr`` the variable; ``selection`` ``{image value: group}``;
  ``keep_size`` tells that ``rows × columns`` come from the workflow.

No Qt here.
"""
from __future__ import annotations

import numpy as np
from Orange.widgets.settings import DomainContextHandler

from orangecontrib.imageanalytics.widgets.utils.grid_rows import image_candidates

__all__ = ["CELL_FITS", "ImageColumnContextHandler", "migrate_settings",
           "migrate_context"]

CELL_FITS = ("Resize", "Crop")


def _is_index(value) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and value[1] == -2 \
        and isinstance(value[0], (int, np.integer))


class ImageColumnContextHandler(DomainContextHandler):
    """Orange's domain context handler; a context of version < 3 holds
    ``imageAttr`` as an index into the image columns, which only the domain
    that the context opens with can turn into the variable."""

    def decode_setting(self, setting, value, domain=None, *args):
        if setting.name == "imageAttr" and _is_index(value):
            candidates = image_candidates(domain)
            index = int(value[0])
            return candidates[index] if 0 <= index < len(candidates) else None
        return super().decode_setting(setting, value, domain, *args)


def migrate_settings(settings: dict, version: int | None) -> None:
    fit = settings.get("cell_fit")
    if isinstance(fit, (int, np.integer)):
        settings["cell_fit"] = CELL_FITS[int(fit)] if 0 <= fit < 2 else "Resize"
    elif fit not in CELL_FITS and "cell_fit" in settings:
        settings["cell_fit"] = "Resize"
    for name in ("rows", "columns", "imageSize"):
        if name in settings:
            try:
                settings[name] = int(settings[name])
            except (TypeError, ValueError):
                del settings[name]
    # older workflows keep the grid size they were saved with, as version 3
    # does (a fresh widget sizes itself for its first data instead)
    if (not version or version < 3) and "rows" in settings and "columns" in settings:
        settings["keep_size"] = True


def migrate_context(context, version: int | None) -> None:
    values = context.values
    if not version or version < 3:
        image = values.get("imageAttr")
        if _is_index(image):
            values["imageAttr"] = (int(image[0]), -2)
        elif image is not None and not DomainContextHandler.is_encoded_var(image):
            del values["imageAttr"]
    label = values.get("label_attr")
    if isinstance(label, tuple) and len(label) == 2 and label[0] is not None \
            and isinstance(label[1], int) and 0 <= label[1] < 100:
        values["label_attr"] = (label[0], label[1] + 100)
    elif isinstance(label, tuple) and label[0] is None:
        del values["label_attr"]
