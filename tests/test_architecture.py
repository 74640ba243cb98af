"""The shape of the package: no import cycles, and a CLI whose --help loads no model library."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "stylesearch"
HEAVY = ("torch", "transformers", "onnxruntime", "faiss", "ray", "pandas", "PIL", "uvicorn", "fastapi")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every import between the package's modules, at module level or inside functions alike."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, but not a package with its own submodules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            parent = min(component, key=len)
            if len(component) > 2 or (len(component) == 2 and not all(c.startswith(parent) for c in component)):
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 40 and graph["stylesearch.cli.search"]  # else the walk found nothing to check
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_every_stage_is_a_subpackage():
    stages = {"data", "model", "train", "evaluate", "index", "search", "serve", "cli"}
    assert stages <= {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}


def loaded_by(args: list[str]) -> dict:
    code = ("import sys, json\nfrom typer.testing import CliRunner\nfrom stylesearch.cli import app\n"
            f"result = CliRunner().invoke(app, {args!r})\n"
            f"print(json.dumps({{'code': result.exit_code, 'out': result.output[:200], "
            f"'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def commands() -> list[list[str]]:
    from stylesearch.cli import app

    names = [[c.name or c.callback.__name__] for c in app.registered_commands]
    names += [[g.name, c.name] for g in app.registered_groups for c in g.typer_instance.registered_commands]
    return names


@pytest.mark.parametrize("command", [[], *commands()], ids=lambda c: " ".join(c) or "stylesearch")
def test_help_loads_no_model_library(command):
    got = loaded_by([*command, "--help"])
    assert got["code"] == 0 and "Usage" in got["out"]
    assert got["heavy"] == [], f"`stylesearch {' '.join(command)} --help` imported {got['heavy']}"


def test_the_console_script_names_an_object_that_exists():
    # The installed `stylesearch` command imports exactly what pyproject.toml names; tests that drive
    # `stylesearch.cli.app` in-process cannot see a stale entry point.
    import importlib

    import tomllib

    from stylesearch.cli import app

    target = tomllib.loads((PACKAGE.parents[1] / "pyproject.toml").read_text())["project"]["scripts"]["stylesearch"]
    module, _, attr = target.partition(":")
    assert getattr(importlib.import_module(module), attr) is app
