#!/usr/bin/env python3
"""Run example workflows headless, as the canvas would, and check they work.

Each workflow is loaded with the canvas's loader, every widget is created
(as when the canvas opens a workflow), the signals flow, and then every link
must carry data and no widget may show an error. Prints one line per
workflow; the exit status is 1 if any failed.

    QT_QPA_PLATFORM=offscreen python scripts/run_tutorial.py [WORKFLOW.ows ...]

Without arguments it runs the tutorials of the installed add-on (so, run
from outside a checkout, it checks an installation).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def open_and_run(path: str, registry, timeout: float = 300.0):
    """Open ``path`` as the canvas does (every widget created, the runtime
    folder the workflow's own) and let the signals flow until every link
    carries data and no widget is working, or ``timeout`` passes.

    Returns the scheme (the caller clears it) and the loader's errors."""
    from AnyQt.QtWidgets import QApplication
    from orangewidget.workflow.widgetsscheme import WidgetsScheme

    scheme = WidgetsScheme()
    scheme.widget_manager.set_creation_policy(scheme.widget_manager.Immediate)
    scheme.set_runtime_env("basedir", os.path.dirname(os.path.abspath(path)))
    errors: list = []
    with open(path, "rb") as f:
        scheme.load_from(f, registry=registry, error_handler=errors.append)
    manager = scheme.signal_manager
    widgets = [scheme.widget_for_node(node) for node in scheme.nodes]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QApplication.processEvents()
        if not manager.has_pending() and not empty_links(scheme) and not any(
                w.isInvalidated() or w.isBlocking() for w in widgets):
            break
        time.sleep(0.01)
    return scheme, errors


def link_values(scheme) -> dict:
    """Each link's value, lazy ones computed, by (source title, sink title,
    input name); None for a link without data."""
    from orangewidget.utils.signals import LazyValue

    out = {}
    for link in scheme.links:
        values = [v.get_value() if LazyValue.is_lazy(v) else v
                  for v in scheme.signal_manager.link_contents(link).values()
                  if v is not None]
        out[(link.source_node.title, link.sink_node.title,
             link.sink_channel.name)] = values[0] if values else None
    return out


def empty_links(scheme) -> list:
    manager = scheme.signal_manager
    return [link for link in scheme.links
            if all(v is None for v in manager.link_contents(link).values())]


def problems(scheme, errors) -> list[str]:
    """What is wrong with a workflow that ran: none when it works."""
    out = [f"could not load: {e}" for e in errors]
    out += [f"no data on {link.source_node.title} → {link.sink_node.title}"
            for link in empty_links(scheme)]
    for node in scheme.nodes:
        for message in scheme.widget_for_node(node).Error.active:
            out.append(f"{node.title}: {message}")
    return out


def run(path: str, registry, timeout: float = 300.0) -> list[str]:
    """The problems of the workflow at ``path``: none when it works."""
    scheme, errors = open_and_run(path, registry, timeout)
    try:
        found = problems(scheme, errors)
        link_values(scheme)  # a lazy output is computed, as downstream would
        if not found:
            print(f"ok   {os.path.basename(path)}: {len(scheme.nodes)} widgets, "
                  f"{len(scheme.links)} links with data, no errors")
        return found
    finally:
        scheme.clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workflows", nargs="*")
    args = parser.parse_args(argv)
    from AnyQt.QtWidgets import QApplication
    from Orange.canvas.config import Config
    from orangecanvas.registry import WidgetRegistry

    app = QApplication.instance() or QApplication(sys.argv[:1])  # noqa: F841
    paths = args.workflows
    if not paths:
        from orangecontrib.imageanalytics.tutorials import workflow_paths
        paths = workflow_paths()
    registry = WidgetRegistry()
    Config.widget_discovery(registry).run(Config.widgets_entry_points())
    failed = False
    for path in paths:
        problems = run(path, registry)
        for problem in problems:
            print(f"FAIL {os.path.basename(path)}: {problem}")
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
