"""Every fact about a model lives in the registry, and the modules that build
models import one another without cycles.

Both are read from the source (with ``ast``), so they also catch imports
inside functions, which a plain import would not run.
"""
import ast
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

import orangecontrib.imageanalytics as package
from orangecontrib.imageanalytics.embedders.registry import (
    EMBEDDERS,
    LOCAL_COPIES,
    resolve_reference,
)

ROOT = Path(package.__file__).parent
PACKAGE = package.__name__
# the parts that embed: the local engines, the networks, the server
CHECKED = ("embedders", "server")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def _modules(root: Path = ROOT) -> dict[str, Path]:
    return {_module_name(path): path for path in root.rglob("*.py")}


def _imported(tree: ast.AST, name: str, is_package: bool,
              known: set[str]) -> set[str]:
    """Modules of ``known`` that the module ``name`` imports, anywhere."""
    here = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = here.split(".")
                parts = parts[:len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            # "from package import module" imports the module
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    known = set(modules)
    return {name: _imported(ast.parse(path.read_text("utf-8")), name,
                            path.name == "__init__.py", known)
            for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import one another (Tarjan's strongly
    connected components with more than one module), iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = len(index)
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        found.append(sorted(group))
    return found


def _checked_modules() -> dict[str, Path]:
    modules = {}
    for part in CHECKED:
        modules.update(_modules(ROOT / part))
    return modules


def test_cycle_finder_finds_a_cycle():
    # the check itself must be able to fail: a → b → c → a, and d alone
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_graph_sees_imports_inside_functions(tmp_path):
    root = tmp_path / "pkg"
    root.mkdir()
    (root / "one.py").write_text("import os\nfrom pkg import two\n")
    (root / "two.py").write_text("def f():\n    from pkg.one import x\n")
    modules = {f"pkg.{p.stem}": p for p in root.glob("*.py")}
    graph = import_graph(modules)
    assert graph == {"pkg.one": {"pkg.two"}, "pkg.two": {"pkg.one"}}
    assert cycles(graph) == [["pkg.one", "pkg.two"]]


def test_no_import_cycle_among_the_embedding_modules():
    modules = _checked_modules()
    assert f"{PACKAGE}.embedders.engines" in modules
    assert f"{PACKAGE}.embedders.models.squeezenet" in modules
    assert cycles(import_graph(modules)) == []


def _model_names() -> set[str]:
    """Keys of the embedders and names of their networks."""
    return set(EMBEDDERS) | set(LOCAL_COPIES) | {
        spec.architecture for spec in EMBEDDERS.values() if spec.architecture}


def side_tables(tree: ast.AST, names: set[str]) -> list[tuple[int, str]]:
    """Dict keys, set members and comparisons that are model names: a table
    or a branch that decides something about a model by its name."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            literals = node.keys
        elif isinstance(node, ast.Set):
            literals = node.elts
        elif isinstance(node, ast.Compare):
            literals = []
            for operand in (node.left, *node.comparators):
                literals += getattr(operand, "elts", [operand])
        else:
            continue
        found += [(node.lineno, literal.value) for literal in literals
                  if isinstance(literal, ast.Constant)
                  and literal.value in names]
    return found


def test_side_table_finder_finds_tables():
    names = {"squeezenet", "vgg16"}
    source = ("A = {'squeezenet': 1}\nB = frozenset({'vgg16'})\n"
              "if arch in ('vgg16', 'x'): pass\n"
              "if key == 'squeezenet': pass\nC = {'other': 'squeezenet'}\n")
    assert sorted(side_tables(ast.parse(source), names)) == [
        (1, "squeezenet"), (2, "vgg16"), (3, "vgg16"), (4, "squeezenet")]


def test_no_side_table_keyed_by_model_names_outside_the_registry():
    names = _model_names()
    assert {"squeezenet", "vgg16-local", "inception_v3"} <= names
    tables = {
        str(path.relative_to(ROOT)): found
        for path in ROOT.rglob("*.py") if path.name != "registry.py"
        for found in [side_tables(ast.parse(path.read_text("utf-8")), names)]
        if found}
    assert tables == {}


@pytest.mark.parametrize("spec", [*EMBEDDERS.values(), *LOCAL_COPIES.values()],
                         ids=lambda spec: spec.key)
def test_the_spec_names_how_its_network_is_built(spec):
    if spec.local:
        assert spec.network, "a local embedder needs a network"
    if spec.network:
        assert spec.architecture
        # the references resolve without importing torch (checked below)
        module, _, function = spec.network.partition(":")
        assert module.startswith("models.") and function
    if spec.onnx_graph:
        assert callable(resolve_reference(spec.onnx_graph))
    if spec.int8:
        assert spec.onnx_graph, "INT8 quantises the ONNX graph"
    if spec.server_key:                  # a local copy: the same network
        original = EMBEDDERS[spec.server_key]
        assert (spec.architecture, spec.network) \
            == (original.architecture, original.network)


def test_every_network_builder_resolves():
    torch = pytest.importorskip("torch")
    assert torch
    for spec in [*EMBEDDERS.values(), *LOCAL_COPIES.values()]:
        if spec.network:
            assert callable(resolve_reference(spec.network))


def test_every_embedding_module_imports_in_a_fresh_interpreter():
    """Importing each module alone works (an import cycle between modules
    would leave names undefined in one of them)."""
    # a __main__ module runs its program when imported
    names = sorted(name for name in _checked_modules()
                   if not name.endswith(".__main__"))
    if "torch" not in sys.modules:
        pytest.importorskip("torch")
    optional = ("ray", "starlette", "uvicorn", "httpx")
    script = (
        "import importlib, sys\n"
        "failed = []\n"
        f"for name in {names!r}:\n"
        "    for loaded in [m for m in sys.modules\n"
        f"                   if m.startswith({PACKAGE!r})]:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError as err:\n"
        f"        if (err.name or '').split('.')[0] not in {optional!r}:\n"
        "            failed.append(f'{name}: {err!r}')\n"
        "print('\\n'.join(failed))\n")
    result = subprocess.run([sys.executable, "-c", script],
                            capture_output=True, text=True, timeout=240,
                            check=True)
    assert result.stdout.strip() == ""


def test_inception_undoes_the_normalisation_its_spec_gives():
    torch = pytest.importorskip("torch")
    from orangecontrib.imageanalytics.embedders.models import build_network
    from orangecontrib.imageanalytics.embedders.registry import get_embedder
    spec = get_embedder("inception-v3")
    model = build_network(spec, random_weights=True)
    std = torch.tensor(spec.std).reshape(1, 3, 1, 1)
    mean = torch.tensor(spec.mean).reshape(1, 3, 1, 1)
    torch.testing.assert_close(model._input_scale, std / 0.5)
    torch.testing.assert_close(model._input_shift, (mean - 0.5) / 0.5)
    # input normalised with mean 0.5 and std 0.5 is already Google's [-1, 1]
    half = replace(spec, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    model = build_network(half, random_weights=True)
    torch.testing.assert_close(model._input_scale, torch.ones(1, 3, 1, 1))
    torch.testing.assert_close(model._input_shift, torch.zeros(1, 3, 1, 1))
