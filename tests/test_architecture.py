"""The layout's rules (ARCHITECTURE.md), checked on the source.

Imports run one way between the top-level packages and never in a circle between modules
(in-function and type-checking imports included); rendering needs nothing from training; imports
sit at the top of modules, but for the optional libraries listed here; every error class is in
``pipeline/errors.py``; modules and functions stay small.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "tasks", "engines", "farm", "configs")

#: Which top-level package may import which. Nothing imports ``tasks``: it is the top.
MAY_IMPORT = {
    "pipeline": {"configs"},
    "engines": {"pipeline"},
    "farm": {"pipeline"},
    "tasks": {"pipeline", "engines", "farm", "configs"},
    "configs": set(),
}

#: Imports allowed inside a function: optional libraries, loaded only where they are needed
#: (each such line carries a comment saying why).
DEFERRED = {
    ("engines/trt_engine.py", "tensorrt"),
    ("engines/onnx_engine.py", "onnxruntime"),
    ("pipeline/landmarks/fan_backend.py", "face_alignment.models"),
    ("pipeline/io/image.py", "OpenImageIO"),
    ("farm/scheduler.py", "sqlalchemy"),
}

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80  # docstring excluded


def _sources() -> dict[str, Path]:
    """Module name → file, for every module of the packages."""
    out = {}
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = p
    return out


SOURCES = _sources()
TREES = {m: ast.parse(p.read_text()) for m, p in SOURCES.items()}


def _resolve(name: str) -> str | None:
    """The module of ours that ``name`` (a module or ``module.attr``) lies in."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in SOURCES:
            return ".".join(parts[:i])
    return None


def _imports(tree: ast.AST) -> list[tuple[ast.stmt, str]]:
    """Every import statement in a tree and each name it imports (``module`` or
    ``module.attr``)."""
    out: list[tuple[ast.stmt, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(node, f"{node.module}.{a.name}") for a in node.names]
    return out


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in SOURCES}
    for mod, tree in TREES.items():
        for _, name in _imports(tree):
            dep = _resolve(name)
            if dep is not None and dep != mod and not mod.startswith(f"{dep}."):
                graph[mod].add(dep)
    return graph


def test_top_level_packages_import_one_way() -> None:
    bad = []
    for mod, deps in _graph().items():
        top = mod.split(".")[0]
        for dep in deps:
            other = dep.split(".")[0]
            if other != top and other not in MAY_IMPORT[top]:
                bad.append(f"{mod} imports {dep}")
    assert not bad, "\n".join(bad)


def test_no_import_cycles_between_modules() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append(path[path.index(d) :] + [d])
            elif d not in state:
                visit(d)
        path.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


#: What renders a fine-tuned actor: none of it may need the training code.
RENDERING = ("pipeline.inference", "pipeline.stages.export", "pipeline.stages.synth",
             "pipeline.stages.deliver", "engines")  # fmt: skip


def test_rendering_does_not_import_training() -> None:
    graph = _graph()
    bad = []
    for start in (m for m in graph if m.startswith(RENDERING)):
        seen, todo = {start}, [start]
        while todo:
            for dep in graph[todo.pop()]:
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        bad += [f"{start} -> {m}" for m in sorted(seen) if m.startswith("pipeline.train")]
    assert not bad, "\n".join(bad)


def test_imports_sit_at_the_top_of_modules() -> None:
    bad = []
    for mod, tree in TREES.items():
        rel = SOURCES[mod].relative_to(ROOT).as_posix()
        lines = SOURCES[mod].read_text().splitlines()
        top = {id(n) for n in tree.body}
        for node, name in _imports(tree):
            if id(node) in top:
                continue
            deferred = any(
                rel == f and (name == m or name.startswith(f"{m}.")) for f, m in DEFERRED
            )
            if not deferred or "#" not in lines[node.lineno - 1]:
                bad.append(f"{rel}:{node.lineno}: {name}")
    assert not bad, "imports inside functions or blocks:\n" + "\n".join(bad)


def test_every_error_class_is_in_errors_py() -> None:
    from pipeline import errors

    ours = {n for n in dir(errors) if isinstance(getattr(errors, n), type)}
    bad = []
    for mod, tree in TREES.items():
        if mod == "pipeline.errors":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(b, ast.Name) and b.id in ours for b in node.bases
            ):
                bad.append(f"{mod}.{node.name}")
    assert not bad, bad


def test_one_sha256_file() -> None:
    defs = [
        mod
        for mod, tree in TREES.items()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name == "sha256_file"
    ]
    assert defs == ["pipeline.hashing"]


@pytest.mark.parametrize("pkg", ["pipeline", "tasks", "engines", "farm"])
def test_modules_and_functions_stay_small(pkg: str) -> None:
    bad = []
    for mod, tree in TREES.items():
        if not mod.startswith(pkg):
            continue
        n = len(SOURCES[mod].read_text().splitlines())
        if n > MAX_MODULE_LINES:
            bad.append(f"{mod}: {n} lines")
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(
                getattr(first, "value", None), ast.Constant
            ):
                length -= first.end_lineno - first.lineno + 1  # type: ignore[operator]
            if length > MAX_FUNCTION_LINES:
                bad.append(f"{mod}.{node.name}: {length} lines")
    assert not bad, "\n".join(bad)
