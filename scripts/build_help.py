#!/usr/bin/env python3
"""Render the widget help pages (doc/widgets/*.md) into the package.

Orange's canvas shows help from an HTML index whose element with id
"widgets" links each widget by name; this writes that index and one page per
widget into orangecontrib/imageanalytics/widgets/help/, together with the
pictures the pages use and the guides the pages link to (doc/*.md: the
server, scripting). Links between the pages (``imagegrid.md``,
``../server.md``) become links to the rendered pages. The rendered pages
are committed so that installing the add-on needs no documentation tools; a
test checks they are up to date and that every link leads to a page.

    python scripts/build_help.py [--check]
"""
import argparse
import filecmp
import html
import os
import re
import shutil
import sys
import tempfile

import markdown

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SOURCE = os.path.join(ROOT, "doc", "widgets")
GUIDES = os.path.join(ROOT, "doc")
TARGET = os.path.join(ROOT, "orangecontrib", "imageanalytics", "widgets", "help")

PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; max-width: 50em; margin: 1em auto;
       padding: 0 1em; line-height: 1.45; }}
img {{ max-width: 100%; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: 0.2em 0.5em; }}
code {{ background: #f4f4f4; }}
</style></head>
<body>
{body}
</body>
</html>
"""


def page_title(text: str, fallback: str) -> str:
    """The first level-one heading, in ATX (# Title) or setext form."""
    lines = text.splitlines()
    for line, underline in zip(lines, lines[1:] + [""]):
        if line.startswith("# "):
            return line[2:].strip()
        if line.strip() and underline.strip() and set(underline.strip()) == {"="}:
            return line.strip()
    return fallback


def _pages(folder: str) -> list[str]:
    return sorted(name[:-3] for name in os.listdir(folder) if name.endswith(".md"))


def _relink(body: str, rendered: set[str]) -> str:
    """``X.md``, ``../X.md`` and ``widgets/X.md`` links to a rendered page
    become ``X.html`` (anchors kept; markdown gives headings no ids, so a
    link to a section opens its page at the top)."""
    def relink(match):
        stem, anchor = match.group(1), match.group(2) or ""
        return f'href="{stem}.html{anchor}"' if stem in rendered else match.group(0)
    return re.sub(r'href="(?:\.\./|widgets/)?([\w-]+)\.md(#[^"]*)?"', relink, body)


def _render(source: str, target: str, stem: str, rendered: set[str]) -> str:
    with open(source, encoding="utf-8") as f:
        text = f.read()
    title = page_title(text, stem)
    body = _relink(markdown.markdown(text, extensions=["tables", "fenced_code"]), rendered)
    with open(os.path.join(target, stem + ".html"), "w", encoding="utf-8") as f:
        f.write(PAGE.format(title=html.escape(title), body=body))
    return title


def build(target: str) -> None:
    os.makedirs(target, exist_ok=True)
    widget_pages = _pages(SOURCE)
    guides = {stem: os.path.join(GUIDES, stem + ".md") for stem in _pages(GUIDES)}
    rendered = set(widget_pages) | set(guides)
    entries = [(_render(os.path.join(SOURCE, stem + ".md"), target, stem, rendered),
                stem + ".html") for stem in widget_pages]
    for stem, source in guides.items():
        _render(source, target, stem, rendered)
    links = "\n".join(f'<li><a href="{href}">{html.escape(title)}</a></li>'
                      for title, href in entries)
    body = ("<h1>Image Analytics</h1>\n"
            f'<section id="widgets">\n<h2>Widgets</h2>\n<ul>\n{links}\n</ul>\n</section>')
    with open(os.path.join(target, "index.html"), "w", encoding="utf-8") as f:
        f.write(PAGE.format(title="Image Analytics", body=body))
    images = os.path.join(SOURCE, "images")
    if os.path.isdir(images):
        shutil.copytree(images, os.path.join(target, "images"), dirs_exist_ok=True)


def same_tree(a: str, b: str) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.diff_files or cmp.funny_files:
        return False
    return all(same_tree(os.path.join(a, d), os.path.join(b, d))
               for d in cmp.common_dirs)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only check that the rendered pages are up to date")
    args = parser.parse_args(argv)
    if not args.check:
        build(TARGET)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        build(tmp)
        if not (os.path.isdir(TARGET) and same_tree(tmp, TARGET)):
            print("help pages are out of date: run scripts/build_help.py",
                  file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
