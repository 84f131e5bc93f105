"""``python -m orangecontrib.imageanalytics.server``: run the server."""
import sys

from orangecontrib.imageanalytics.server.cli import main

sys.exit(main())
