"""Example workflows and the photos they use.

Orange's canvas lists the ``.ows`` files of this package among its example
workflows (entry point group ``orange.widgets.tutorials``). Their Import
Images widgets read the photos in ``photos/``, stored relative to the
workflow, so they work wherever the add-on is installed:

``photos/labelled``
    fifty photos in five sub-folders, one per category;
``photos/new``
    twenty-five more without labels, to be predicted.

Scripts find them with :func:`example_photos`.
"""
from __future__ import annotations

import os

__all__ = ["PHOTOS", "example_photos", "workflow_paths"]

#: The folder of the example photos.
PHOTOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "photos")


def example_photos(part: str = "labelled") -> str:
    """The folder of the example photos: ``"labelled"`` or ``"new"``."""
    if part not in ("labelled", "new"):
        raise ValueError(f"no example photos {part!r}; "
                         "there are 'labelled' and 'new'")
    return os.path.join(PHOTOS, part)


def workflow_paths() -> list[str]:
    """The example workflows' files."""
    here = os.path.dirname(os.path.abspath(__file__))
    return sorted(os.path.join(here, name) for name in os.listdir(here)
                  if name.endswith(".ows"))
