"""Untrusted files: every loader in the shipped code is one that runs no pickled code.

A static check over the source of ``pipeline/``, ``engines/``, ``tasks/`` and ``farm/``: a new
``torch.load`` without ``weights_only=True``, an ``np.load`` without ``allow_pickle=False``, or any
``pickle``/``yaml.load``/``eval`` call fails this test with the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "engines", "tasks", "farm")

#: Calls that deserialize with code execution, or run code, whatever their arguments.
FORBIDDEN = {
    "pickle.load",
    "pickle.loads",
    "pickle.Unpickler",
    "cPickle.load",
    "dill.load",
    "dill.loads",
    "joblib.load",
    "marshal.load",
    "marshal.loads",
    "shelve.open",
    "yaml.load",
    "yaml.full_load",
    "yaml.unsafe_load",
    "yaml.load_all",
    "yaml.unsafe_load_all",
    "eval",
    "exec",
}


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return "?"


def _kw(call: ast.Call, key: str):
    for k in call.keywords:
        if k.arg == key:
            return k.value.value if isinstance(k.value, ast.Constant) else "<expr>"
    return None


def problems(source: str, where: str) -> list[str]:
    """Unsafe loader calls in one module's source, as ``where:line: what``."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        if name in FORBIDDEN:
            out.append(f"{where}:{node.lineno}: {name}(...) can run code from the file")
        elif name.endswith("torch.load") and _kw(node, "weights_only") is not True:
            out.append(f"{where}:{node.lineno}: torch.load without weights_only=True")
        elif name in ("np.load", "numpy.load") and _kw(node, "allow_pickle") is not False:
            out.append(f"{where}:{node.lineno}: np.load without allow_pickle=False")
    return out


def _modules():
    for pkg in PACKAGES:
        yield from sorted((ROOT / pkg).rglob("*.py"))


def test_the_check_catches_each_unsafe_form():
    bad = (
        "import pickle, yaml, torch, numpy as np\n"
        "pickle.loads(b)\n"
        "yaml.load(t, Loader=yaml.Loader)\n"
        "torch.load(p)\n"
        "torch.load(p, weights_only=False)\n"
        "np.load(p)\n"
        "np.load(p, allow_pickle=True)\n"
        "eval(s)\n"
    )
    assert len(problems(bad, "bad.py")) == 7
    good = (
        "torch.load(p, map_location='cpu', weights_only=True)\n"
        "np.load(p, allow_pickle=False)\n"
        "yaml.safe_load(t)\n"
    )
    assert problems(good, "good.py") == []


def test_no_unsafe_loader_in_shipped_code():
    found = []
    for path in _modules():
        found += problems(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert found == []
    assert len(list(_modules())) > 50  # the walk did find the packages
