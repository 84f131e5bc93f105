#!/usr/bin/env python3
"""Take the Image Viewer help page's screenshot in the real canvas.

Writes a workflow Import Images (the example photos) → Image Viewer whose
viewer window opens by itself (a default window group), opens it in Orange's
canvas on an X display (Xvfb), grabs the screen from a second Qt process and
keeps the viewer window's part in doc/widgets/images/imageviewer.png.

    python scripts/screenshot_imageviewer.py [--display :91] [--out PNG]

Needs Xvfb; it is started on the display unless one runs there already.
"""
import base64
import os
import pickle

from canvas_screenshot import PREFIX, ROOT, arguments, shoot, window_state

IMAGES = os.path.join(ROOT, "orangecontrib", "imageanalytics", "tutorials", "photos", "labelled")
GEOMETRY = (40, 40, 1000, 640)  # x, y, width, height of the viewer window


def workflow(path: str) -> None:
    from Orange.widgets.utils.filedialogs import RecentPath

    def props(settings):
        return base64.b64encode(pickle.dumps(settings, protocol=4)).decode()

    importer = props({"recent_paths": [RecentPath(IMAGES, None, None)],
                      "__version__": 1})
    geometry = window_state(GEOMETRY)
    viewer = props({"imageSize": 112, "autoCommit": True, "__version__": 2,
                    "controlAreaVisible": True})
    state = base64.b64encode(geometry).decode()
    text = f"""<?xml version='1.0' encoding='utf-8'?>
<scheme version="2.0" title="Photos" description="">
  <nodes>
    <node id="0" name="Import Images" qualified_name="{PREFIX}owimageimport.OWImportImages"
          project_name="Orange3-ImageAnalytics" version="" title="Import Images"
          position="(150, 150)" />
    <node id="1" name="Image Viewer" qualified_name="{PREFIX}owimageviewer.OWImageViewer"
          project_name="Orange3-ImageAnalytics" version="" title="Image Viewer"
          position="(350, 150)" />
  </nodes>
  <links>
    <link id="0" source_node_id="0" sink_node_id="1" source_channel="Data"
          sink_channel="Data" enabled="true" source_channel_id="data" sink_channel_id="data" />
  </links>
  <annotations />
  <node_properties>
    <properties node_id="0" format="pickle">{importer}</properties>
    <properties node_id="1" format="pickle">{viewer}</properties>
  </node_properties>
  <session_state>
    <window_groups>
      <group name="Screenshot" default="true">
        <window_state node_id="1">{state}</window_state>
      </group>
    </window_groups>
  </session_state>
</scheme>
"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main() -> None:
    args = arguments(__doc__.split("\n")[0], ":91", "imageviewer.png")
    shoot(workflow, "Image Viewer", GEOMETRY, args)


if __name__ == "__main__":
    main()
