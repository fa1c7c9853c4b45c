"""The package's floors (docs/architecture.md): what may import what, enforced on the source.

    core < body < runtime < video < outputs < runner < teachers < training < cli

A module may import package modules from its own floor or a lower one, never a higher one (lazy imports
inside functions count too). The run-time floors (core, body, runtime, video, outputs, runner) never import
torch, training, teachers or cli: the two exceptions are named below. Nothing imports the ``tools/`` scripts,
nothing edits ``sys.path`` (pyproject.toml makes the package importable), and only ``cli`` parses arguments
(argparse).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "instanthmr"
FLOORS = ("core", "body", "runtime", "video", "outputs", "runner", "teachers", "training", "cli")
RUNTIME_FLOORS = FLOORS[:6]
TORCH_LIKE = {"torch", "torchvision", "timm", "rfdetr", "transformers", "peft"}
# The only run-time files allowed to import torch, and why: MHR's differentiable forward (used by training),
# and the torch RF-DETR detector (imports the rfdetr package when constructed, never at module import).
TORCH_ALLOWED = {"body/mhr_torch.py": "anywhere", "runtime/detector.py": "lazily"}


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """``(module, line, at_module_level)`` for every import statement in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(n) for n in tree.body}
    for n in tree.body:  # imports under a module-level try/if still run at import time
        if isinstance(n, (ast.Try, ast.If)):
            top |= {id(m) for m in ast.walk(n)}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "instanthmr":
                out += [(f"instanthmr.{a.name}", node.lineno, id(node) in top) for a in node.names]
            else:
                out.append((node.module, node.lineno, id(node) in top))
        elif isinstance(node, ast.ImportFrom) and node.level:
            out.append(("." * node.level + (node.module or ""), node.lineno, id(node) in top))
    return out


def _floor(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "instanthmr" or len(parts) < 2 or parts[1] not in FLOORS:
        return None
    return FLOORS.index(parts[1])


def _package_files():
    return [p for p in PKG.rglob("*.py") if p.parent != PKG]  # instanthmr/__init__.py is the lazy front door


def test_every_package_module_sits_on_a_floor():
    stray = [str(p.relative_to(PKG)) for p in PKG.glob("*.py") if p.name != "__init__.py"]
    assert not stray, f"modules outside the floors: {stray}"
    assert {p.name for p in PKG.iterdir() if p.is_dir() and p.name != "__pycache__"} == set(FLOORS)


def test_no_floor_imports_a_higher_one():
    bad = []
    for path in _package_files():
        rel = path.relative_to(PKG)
        mine = FLOORS.index(rel.parts[0])
        for module, line, _ in _imports(path):
            if module.startswith("."):
                bad.append(f"{rel}:{line}: relative import {module} (use absolute imports)")
                continue
            theirs = _floor(module)
            if theirs is not None and theirs > mine:
                bad.append(f"{rel}:{line}: {FLOORS[mine]} imports {module} ({FLOORS[theirs]})")
            if module == "tools" or module.startswith("tools."):
                bad.append(f"{rel}:{line}: imports the scripts folder ({module})")
    assert not bad, "\n".join(bad)


def test_runtime_floors_never_import_torch():
    bad = []
    for path in _package_files():
        rel = path.relative_to(PKG)
        if rel.parts[0] not in RUNTIME_FLOORS:
            continue
        for module, line, top in _imports(path):
            root = module.split(".")[0]
            allowed = TORCH_ALLOWED.get(str(rel))
            if root in TORCH_LIKE and allowed != "anywhere" and (top or allowed is None):
                bad.append(f"{rel}:{line}: imports {module}{' at module level' if top else ''}")
    assert not bad, "\n".join(bad)


def test_only_the_command_line_parses_arguments():
    """argparse lives in ``cli/``: the library takes configurations (dataclasses), never a Namespace or argv."""
    bad = [f"{p.relative_to(PKG)}:{line}" for p in _package_files() if p.relative_to(PKG).parts[0] != "cli"
           for module, line, _ in _imports(p) if module.split(".")[0] == "argparse"]
    assert not bad, f"argparse outside instanthmr/cli: {bad}"


#: What commands share: helpers, not commands (a command importing another makes import circles and argv glue).
CLI_SHARED = {"instanthmr.cli.common", "instanthmr.cli.run_flags"}


def test_commands_never_import_each_other():
    bad = [f"{p.relative_to(PKG)}:{line}: imports {module}" for p in sorted((PKG / "cli").glob("*.py"))
           for module, line, _ in _imports(p)
           if module.startswith("instanthmr.cli") and module not in CLI_SHARED and module != "instanthmr.cli"]
    bad += [f"{p.relative_to(PKG)}: imports instanthmr.cli" for p in sorted((PKG / "cli").glob("*.py"))
            if any(m == "instanthmr.cli" for m, _, _ in _imports(p))]
    assert not bad, "a command imports another command; move what they share into the library or cli/common:\n" \
        + "\n".join(bad)


def test_nothing_edits_sys_path():
    files = [p for p in ROOT.rglob("*.py") if not any(part.startswith(".") for part in p.relative_to(ROOT).parts)]
    bad = [f"{p.relative_to(ROOT)}:{n}" for p in files if p != Path(__file__).resolve()
           for n, line in enumerate(p.read_text().splitlines(), 1) if "sys.path.insert" in line or "sys.path.append" in line]
    assert not bad, bad


def test_tools_and_demo_are_thin_wrappers():
    for script in [ROOT / "demo.py", *sorted((ROOT / "tools").glob("*.py"))]:
        tree = ast.parse(script.read_text())
        defs = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        assert not defs, f"{script.name} defines {defs}: code belongs in instanthmr/cli"


def test_runtime_modules_import_without_torch():
    """A fresh interpreter imports every run-time module (and the lazy front door) and has no torch loaded."""
    mods = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                  for p in _package_files() if p.relative_to(PKG).parts[0] in RUNTIME_FLOORS
                  and str(p.relative_to(PKG)) != "body/mhr_torch.py")
    code = ("import importlib, sys\nimport instanthmr\n"
            f"for m in {mods!r}:\n    importlib.import_module(m)\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'timm', 'rfdetr', 'transformers'})\n"
            "print(len(sys.modules)); assert not heavy, heavy\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]


@pytest.mark.parametrize("floor", FLOORS)
def test_floor_is_a_package_with_a_docstring(floor):
    init = PKG / floor / "__init__.py"
    assert init.is_file() and ast.get_docstring(ast.parse(init.read_text())), f"{floor}/__init__.py needs a docstring"


def test_console_scripts_point_at_cli_mains():
    """Every console script in pyproject.toml names a ``main`` that exists in instanthmr/cli."""
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts
    for name, target in scripts.items():
        module, func = target.split(":")
        source = PKG / "cli" / (module.removeprefix("instanthmr.cli.") + ".py")
        assert module.startswith("instanthmr.cli.") and source.is_file(), f"{name}: {target}"
        assert func == "main" and "\ndef main(" in source.read_text(), f"{name}: {target}"


def test_front_door_has_the_reference_api_names():
    """``from instanthmr import ...`` with the reference implementation's spellings, lazily (no torch)."""
    code = ("import sys\nfrom instanthmr import (FrameResult, HMRPrediction, InstantHMR, JOINT_NAMES, NUM_JOINTS,\n"
            "    PosePipeline, RFDETRDetector, SKELETON_EDGES)\n"
            "from instanthmr.core.skeleton import MHR70_EDGES, MHR70_NAMES\n"
            "assert NUM_JOINTS == 70 and JOINT_NAMES == MHR70_NAMES and SKELETON_EDGES == MHR70_EDGES\n"
            "assert 'torch' not in sys.modules, 'the front door loaded torch'\n"
            "from instanthmr.runtime.detector import Detections\n"
            "d = Detections([[0, 0, 10, 20], [5, 5, 9, 9]], [0.9, 0.4])\n"
            "got = [(x['bbox'].tolist(), round(x['confidence'], 2)) for x in d]\n"
            "assert got == [([0, 0, 10, 20], 0.9), ([5, 5, 9, 9], 0.4)], got\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _import_graph() -> dict[str, set[str]]:
    """``module -> package modules it imports`` (module level or inside functions), from the source.
    ``from a.b import c`` points at ``a.b.c`` when that is a module, else at ``a.b``; importing a submodule
    is not counted as importing its parent packages (Python runs their ``__init__`` first, but that order
    cannot deadlock on a name)."""
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        edges = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in files else node.module
                           for a in node.names]
            else:
                continue
            edges |= {t for t in targets if t in files and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    """No two package modules import each other, directly or through others, at module level or inside a
    function: each concept's home is below its users (a factory looks implementations up by name)."""
    cycles = _cycles(_import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)
