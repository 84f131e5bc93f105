"""The conda recipe says what setup.py says.

conda cannot be run here, so the recipe is checked against setup.py: the
version, the run requirements (conda-forge's package names) and the entry
points.
"""
import os
import re
import runpy

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(REPO, "conda-recipe", "meta.yaml")

#: PyPI name -> conda-forge name, where they differ beyond letter case
CONDA_NAMES = {"pyqt5": "pyqt", "torch": "pytorch"}


def setup_globals():
    return runpy.run_path(os.path.join(REPO, "setup.py"), run_name="setup")


def rendered_recipe():
    with open(RECIPE, encoding="utf-8") as f:
        text = f.read()
    variables = dict(re.findall(r'{%\s*set\s+(\w+)\s*=\s*"([^"]*)"\s*%}', text))
    text = re.sub(r"{%.*?%}", "", text)
    text = re.sub(r"{{\s*(\w+)\s*}}",
                  lambda m: variables.get(m.group(1), m.group(1)), text)
    return yaml.safe_load(text), variables


def requirement(spec):
    name, version = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", spec.strip()).groups()
    return name.lower(), version.replace(" ", "")


def test_version_and_name():
    recipe, variables = rendered_recipe()
    setup = setup_globals()
    assert str(recipe["package"]["version"]) == setup["VERSION"]
    assert variables["name"] == setup["NAME"]
    assert recipe["package"]["name"] == setup["NAME"].lower()
    assert recipe["build"]["noarch"] == "python"


def test_run_requirements_match_setup():
    recipe, _ = rendered_recipe()
    setup = setup_globals()
    expected = {}
    for spec in setup["INSTALL_REQUIRES"]:
        name, version = requirement(spec)
        expected[CONDA_NAMES.get(name, name)] = version
    run = dict(requirement(spec) for spec in recipe["requirements"]["run"])
    python = run.pop("python")
    assert python == setup["PYTHON_REQUIRES"]
    assert run == expected


def test_entry_points_match_setup():
    recipe, _ = rendered_recipe()
    setup = setup_globals()
    scripts = [ep.replace(" ", "") for ep in setup["ENTRY_POINTS"]["console_scripts"]]
    assert [ep.replace(" ", "") for ep in recipe["build"]["entry_points"]] == scripts


def test_imports_exist():
    import importlib

    recipe, _ = rendered_recipe()
    for module in recipe["test"]["imports"]:
        importlib.import_module(module)
