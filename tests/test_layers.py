"""The layers, read from the source: every import of every package module points down.

    cli (htsat_live/)  >  gui | training | evaluation  >  stream  >  model

A module may import its own package and the layers below it, never a layer above it, never a sibling
wing (gui, training and evaluation do not import each other), and `stream` takes only the public names
of `htsat_live.model` (its `__all__`). Inside a package, no module imports one that imports it back, even
by way of others. Imports are read with `ast`, relative ones resolved, so a lazy import inside a function
counts as much as one at the top.
"""

import ast
from dataclasses import dataclass
from pathlib import Path

import htsat_live.model

ROOT = Path(__file__).resolve().parents[1]
# folder at the repository root -> (installed package, layer rank)
PACKAGES = {
    "model": ("htsat_live.model", 0),
    "stream": ("htsat_live.stream", 1),
    "gui": ("htsat_live.gui", 2),
    "training": ("htsat_live.training", 2),
    "evaluation": ("htsat_live.evaluation", 2),
    "htsat_live": ("htsat_live", 3),
}
RANK = {package: rank for package, rank in PACKAGES.values()}
UNNAMESPACED = set(PACKAGES) - {"htsat_live"}


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    imported: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.imported}: {self.reason}"


def package_of(module: str) -> str:
    """The layer package an absolute htsat_live module belongs to: htsat_live.stream.events -> htsat_live.stream."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and ".".join(parts[:2]) in RANK else "htsat_live"


def imports_of(source: str, package: str) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) for every import in a module that lies in `package`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]  # level 1 = this package
                module = ".".join(base + ([module] if module else []))
            found.append((node.lineno, module, [alias.name for alias in node.names]))
    return found


def check_module(path: str, source: str, package: str) -> list[Violation]:
    """The layer rules broken by one module of `package` (an installed name such as htsat_live.model, or a
    subpackage such as htsat_live.stream.outputs, which stands in the layer of its package)."""
    violations = []
    layer = package_of(package)
    for line, module, names in imports_of(source, package):
        top = module.split(".")[0]
        if top in UNNAMESPACED:
            violations.append(Violation(path, line, module, "imports a top-level name; use htsat_live." + module))
            continue
        if top != "htsat_live":
            continue  # the standard library or a third-party package
        if module == "htsat_live" and names:
            # `from htsat_live import model` names a subpackage; `from htsat_live import load_model` the top.
            targets = [f"htsat_live.{name}" if f"htsat_live.{name}" in RANK else "htsat_live" for name in names]
        else:
            targets = [module]
        for target in targets:
            imported = package_of(target)
            if imported == layer:
                continue
            if RANK[imported] > RANK[layer]:
                violations.append(Violation(path, line, target, f"{layer} imports from {imported}, a layer above it"))
            elif RANK[imported] == RANK[layer]:
                violations.append(Violation(path, line, target, f"{layer} imports from its sibling wing {imported}"))
            elif layer == "htsat_live.stream" and imported == "htsat_live.model":
                if target != "htsat_live.model":
                    violations.append(
                        Violation(
                            path,
                            line,
                            target,
                            "stream imports a model submodule; use the public names of htsat_live.model",
                        )
                    )
                private = sorted(set(names) - set(htsat_live.model.__all__))
                if private:
                    violations.append(
                        Violation(
                            path,
                            line,
                            target,
                            f"stream imports {private}, not public names of htsat_live.model (its __all__)",
                        )
                    )
    return violations


def tree_violations() -> list[Violation]:
    violations = []
    for folder, (package, _) in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT / folder)
            module_package = ".".join([package, *relative.parent.parts])
            violations += check_module(str(path.relative_to(ROOT)), path.read_text(encoding="utf-8"), module_package)
    return violations


def module_graph() -> dict[str, set[str]]:
    """Every module of the packages -> the modules of the packages it imports (`from p import m` counts m)."""
    paths = {}
    for folder, (package, _) in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            paths[".".join([package, *(parts[:-1] if parts[-1] == "__init__" else parts)])] = path
    graph = {}
    for module, path in paths.items():
        package = module if path.stem == "__init__" else module.rpartition(".")[0]
        imported = [
            [name, *(f"{name}.{alias}" for alias in aliases)]
            for _, name, aliases in imports_of(path.read_text(encoding="utf-8"), package)
        ]
        graph[module] = {name for names in imported for name in names if name in paths and name != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of imports, the modules along it with the first repeated at the end; [] when there is none."""
    done, path = set(), []

    def walk(module: str) -> list[str]:
        path.append(module)
        for target in sorted(graph[module]):
            if target in path:
                return path[path.index(target) :] + [target]
            if target not in done and (cycle := walk(target)):
                return cycle
        done.add(path.pop())
        return []

    return next((cycle for module in sorted(graph) if module not in done and (cycle := walk(module))), [])


def test_no_module_imports_one_that_imports_it_back():
    cycle = find_cycle(module_graph())
    assert not cycle, "modules that import each other: " + " -> ".join(cycle)


def test_the_cycle_check_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c", "d"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_every_import_points_down():
    violations = tree_violations()
    assert not violations, "layer rules broken:\n" + "\n".join(map(str, violations))


def test_the_check_reads_every_package():
    counted = {folder: len(list((ROOT / folder).rglob("*.py"))) for folder in PACKAGES}
    assert all(count > 0 for count in counted.values()), counted


def test_a_model_module_importing_the_stream_fails_the_check():
    for source in (
        "from htsat_live.stream import events\n",
        "from htsat_live.stream.events import EventDetector\n",
        "import htsat_live.stream.pipeline\n",
        "def later():\n    from ..stream import config\n",
        "from .. import stream\n",
    ):
        violations = check_module("model/example.py", source, "htsat_live.model")
        assert violations and "a layer above" in violations[0].reason, source
        assert violations[0].path == "model/example.py" and violations[0].line >= 1


def test_siblings_and_private_model_names_fail_the_check():
    assert (
        "sibling"
        in check_module("training/x.py", "from htsat_live.evaluation.metrics import psds\n", "htsat_live.training")[
            0
        ].reason
    )
    assert (
        "model submodule"
        in check_module(
            "stream/x.py", "from htsat_live.model.checkpoint import read_checkpoint\n", "htsat_live.stream"
        )[0].reason
    )
    assert (
        "not public"
        in check_module("stream/x.py", "from htsat_live.model import build_model\n", "htsat_live.stream")[0].reason
    )
    assert "top-level" in check_module("gui/x.py", "from stream.config import Config\n", "htsat_live.gui")[0].reason
    assert (
        "a layer above"
        in check_module("model/x.py", "from htsat_live import load_model\n", "htsat_live.model")[0].reason
    )


def test_allowed_imports_pass_the_check():
    assert not check_module(
        "stream/x.py", "from htsat_live.model import SAMPLE_RATE, load_model\nimport numpy\n", "htsat_live.stream"
    )
    assert not check_module(
        "gui/x.py",
        "from htsat_live.stream.config import Config\nfrom htsat_live.model.htsat import HTSAT\n",
        "htsat_live.gui",
    )
    assert not check_module("model/x.py", "from .timebase import SAMPLE_RATE\n", "htsat_live.model")


OUTPUTS = "htsat_live.stream.outputs"
# The module at the top of stream/ that builds the outputs the config turns on: the one that may import them.
WIRING = {"building.py"}


def core_violations(path: str, source: str) -> list[Violation]:
    """The imports of stream/outputs/ (the package or any module in it) in a module at the top of stream/."""
    violations = []
    for line, module, names in imports_of(source, "htsat_live.stream"):
        targets = [module, *(f"{module}.{name}" for name in names)]  # `from htsat_live.stream import outputs`
        imported = next((t for t in targets if t == OUTPUTS or t.startswith(OUTPUTS + ".")), None)
        if imported is not None:
            violations.append(
                Violation(
                    path, line, imported, "the live core imports an output; only stream/building.py builds the outputs"
                )
            )
    return violations


def test_the_live_core_imports_no_output():
    """The live core is every module at the top of stream/ (capture, ring, windows, stitch, events, loudness,
    messages, output, pipeline, status, and beside them config, replay, tag and commands): it hands each
    message to the Output interface (stream/output.py) and knows no output by name, so none of these imports
    a module of stream/outputs/. The one exception is WIRING, stream/building.py, which builds the outputs
    the config turns on. stream/outputs/ and stream/inference/ may import the core, as every package may."""
    violations = []
    for path in sorted((ROOT / "stream").glob("*.py")):
        if path.name not in WIRING:
            violations += core_violations(str(path.relative_to(ROOT)), path.read_text(encoding="utf-8"))
    assert not violations, "the live core imports outputs:\n" + "\n".join(map(str, violations))


def test_an_output_imported_by_the_core_fails_the_check():
    for source in (
        "from htsat_live.stream.outputs.sinks import Sinks\n",
        "import htsat_live.stream.outputs.publish\n",
        "from htsat_live.stream import outputs\n",
        "from .outputs import mqtt\n",
        "def later():\n    from .outputs.prometheus import PrometheusMetrics\n",
    ):
        [violation] = core_violations("stream/pipeline.py", source)
        assert violation.imported.startswith(OUTPUTS) and "live core" in violation.reason, source
    assert not core_violations(
        "stream/pipeline.py",
        "from htsat_live.stream.output import Output\nfrom .messages import Message\nfrom .inference import worker\n",
    )
