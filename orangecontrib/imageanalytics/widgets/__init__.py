"""Image Analytics widget category."""
import os
import sysconfig

NAME = "Image Analytics"
DESCRIPTION = "Import images, turn them into feature vectors, explore and " \
              "save them."
BACKGROUND = "#f2c7a6"
ICON = "icons/Category-ImageAnalytics.svg"
PRIORITY = 1500

_HERE = os.path.dirname(__file__)

# Help pages: the local build of doc/ in a development checkout, else the
# copy installed with the package.
WIDGET_HELP_PATH = (
    (os.path.join(_HERE, "..", "..", "..", "doc", "build", "html",
                  "index.html"), None),
    (os.path.join(sysconfig.get_path("data"), "share", "help",
                  "orange3-imageanalytics", "index.html"), None),
)
