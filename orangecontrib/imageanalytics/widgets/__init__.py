"""Image Analytics widget category."""
import os

NAME = "Image Analytics"
DESCRIPTION = "Import images, turn them into feature vectors, explore and " \
              "save them."
BACKGROUND = "#F7F5A8"
ICON = "icons/Category-ImageAnalytics.svg"
PRIORITY = 1500

# Help pages rendered from doc/widgets by scripts/build_help.py; the canvas
# finds each widget's page by its name in this index.
WIDGET_HELP_PATH = (
    (os.path.join(os.path.dirname(__file__), "help", "index.html"), None),
)
