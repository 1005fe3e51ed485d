"""The package's shape: no import cycle, and docs/layout.md matches the tree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import ROOT

SRC = ROOT / "src"
PACKAGE = SRC / "rnnlab"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Which rnnlab modules each rnnlab module imports, counting imports inside functions."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        for nxt in sorted(graph[node]):
            if nxt in path:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in done and (cycle := visit(nxt, [*path, nxt])):
                return cycle
        done.add(node)
        return None

    return next((c for n in sorted(graph) if (c := visit(n, [n]))), None)


def test_no_import_cycle_in_the_package():
    graph = import_graph()
    assert len(graph) > 20 and graph["rnnlab.training.experiment"]  # the graph was really read
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def listed_modules(block: str) -> set[str]:
    """The modules and packages a layout block lists under ``src/rnnlab/``, as paths relative
    to the package ("config/", "config/checks.py"): each line's first column, nested by indent."""
    listed = block.split("src/rnnlab/\n", 1)[1].split("\ntests/", 1)[0]
    names: set[str] = set()
    parents: dict[int, str] = {}  # indent -> the package path of that depth
    for line in listed.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        parent = parents.get(indent - 2, "")
        first = re.split(r"\s{2,}", line.strip())[0]
        for name in re.findall(r"\b([a-z_]+(?:\.py|/))", first):
            names.add(parent + name)
            if name.endswith("/"):
                parents[indent] = parent + name
    return names


def test_the_layout_parser_reads_nesting():
    block = "src/rnnlab/\n  a.py  x\n  b/  y\n    c.py d.py  z\n  e.py\ntests/\n"
    assert listed_modules(block) == {"a.py", "b/", "b/c.py", "b/d.py", "e.py"}


def test_the_layout_page_lists_every_module_and_nothing_else():
    block = (ROOT / "docs" / "layout.md").read_text().split("```")[1]
    on_disk = {
        str(p.relative_to(PACKAGE)) + ("/" if p.is_dir() else "")
        for p in PACKAGE.rglob("*")
        if (p.suffix == ".py" or (p / "__init__.py").is_file())
        and "__pycache__" not in p.parts
        and p.parent.name != "bench"  # bench/ is one entry: a module per section
    }
    on_disk -= {"__main__.py"}
    on_disk = {p for p in on_disk if not p.endswith("__init__.py") or "/" not in p}
    assert listed_modules(block) == on_disk
    for line in block.splitlines():  # the top-level entries (train.py, conf/, ...) exist too
        entry = line.split()[0] if line.strip() and not line.startswith(" ") else None
        if entry:
            assert (ROOT / entry.rstrip("/")).exists(), entry


def test_the_public_names_are_importable_from_the_package_without_torch_at_import():
    import subprocess
    import sys

    import rnnlab

    code = "import sys, rnnlab; assert 'torch' not in sys.modules, 'import rnnlab imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True)
    from rnnlab.models.cells import ScratchRNN

    assert rnnlab.ScratchRNN is ScratchRNN
    for name in rnnlab.__all__:
        assert getattr(rnnlab, name).__name__ == name
