"""The README and docs/ say what is true of the project today: a short front page, links and
paths that exist, numbers that are the golden runs', and words about the project only."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import re
from pathlib import Path

import pytest
from conftest import ROOT

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
#: Every text file of the repository a reader or a user sees.
TEXT_FILES = [
    *PAGES,
    ROOT / "train.py",
    ROOT / "pyproject.toml",
    *sorted((ROOT / "src").rglob("*.py")),
    *sorted((ROOT / "conf").rglob("*.yaml")),
    *sorted((ROOT / "tests").rglob("*.py")),
    *sorted((ROOT / ".ci").iterdir()),
]
GOLDEN = json.loads((ROOT / "tests" / "golden" / "metrics.json").read_text())


def test_the_readme_is_a_front_page():
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail to docs/"
    headings = [line for line in lines if line.startswith("## ")]
    for needed in ("## Set up and run", "## Quick start", "## What the experiments show"):
        assert needed in headings


# Words that narrate how the project was made, and paths of the machine it was made on. The
# character classes keep this file from matching itself.
DEVELOPMENT_WORDS = re.compile(
    r"\b(this|previous|earlier|last|next|a) se[s]sion\b|\bse[s]sion note|\bissues? #?[0-9]+\b"
    r"|\bas before\b|/[t]mp/|/[w]ork/|/[r]oot/|/[h]ome/",
    re.IGNORECASE,
)


@pytest.mark.parametrize("path", TEXT_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_project_speaks_about_itself_only(path: Path):
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if DEVELOPMENT_WORDS.search(line)
    ]
    assert not found, "\n".join(found)


def test_the_development_words_are_found():
    for line in ("measured in the last se" "ssion", "after is" "sue 12", "/t" "mp/x/outputs"):
        assert DEVELOPMENT_WORDS.search(line), line
    assert not DEVELOPMENT_WORDS.search("TensorBoard's HParams session status")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # no headings in code
    return {slug(m) for m in re.findall(r"^#+ (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_leads_somewhere(page: Path):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (page.parent / file).resolve() if file else page
        assert dest.exists(), f"{page.name}: {target} does not exist"
        if anchor and dest.suffix == ".md":
            assert anchor in anchors(dest), f"{page.name}: no heading #{anchor} in {dest.name}"


REPO_PATH = re.compile(r"`((?:src|tests|conf|docs|notebooks|rnnlab)/[\w./<>-]+?)`")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_repository_path_the_docs_name_exists(page: Path):
    for path in REPO_PATH.findall(page.read_text()):
        if "<" in path or "*" in path:  # a pattern (conf/study/<name>.yaml), not a file
            continue
        assert not path.startswith("rnnlab/"), f"{page.name}: {path}: say src/{path}"
        assert (ROOT / path.rstrip("/")).exists(), f"{page.name}: {path} does not exist"


def _top_level_names(module: str) -> set[str]:
    spec = importlib.util.find_spec(module)
    tree = ast.parse(Path(spec.origin).read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    if Path(spec.origin).name == "__init__.py":  # its subpackages, modules and lazy names
        names |= {p.stem for p in Path(spec.origin).parent.iterdir()}
        names |= set(getattr(importlib.import_module(module), "__all__", ()))
    return names


#: A dotted name in prose or a docstring; not a quoted string (a logger's name) or a resolver
#: (``${rnnlab.job_name:...}``).
DOTTED = re.compile(r"(?<![\w{\"'])rnnlab(?:\.\w+)+")


def _module_or_none(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


@pytest.mark.parametrize(
    "path",
    [*PAGES, *sorted((ROOT / "src").rglob("*.py")), *sorted((ROOT / "conf").rglob("*.yaml"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_every_rnnlab_name_mentioned_exists(path: Path):
    """``rnnlab.models.cells.ScratchRNN`` in a doc or docstring names a real module and a name
    defined in it (read from the source, so nothing is imported)."""
    for dotted in set(DOTTED.findall(path.read_text())):
        if dotted.endswith((".yaml", ".py", ".md", ".log")):  # a file's name
            continue
        parts = dotted.split(".")
        module = next(
            ".".join(parts[:i]) for i in range(len(parts), 0, -1)
            if _module_or_none(".".join(parts[:i]))
        )
        rest = dotted[len(module) + 1 :].split(".")[0]
        if rest.startswith("__"):  # __doc__, __version__
            continue
        assert not rest or rest in _top_level_names(module), f"{path.name}: {dotted}"


def _golden_values() -> set[str]:
    return {
        f"{v:.6e}" for run in GOLDEN.values() for v in run.values() if isinstance(v, float)
    }


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_numbers_quoted_to_seven_digits_are_the_golden_runs(page: Path):
    """A number written as 8.625823e-07 is one of tests/golden/metrics.json's."""
    quoted = set(re.findall(r"\b\d\.\d{6}e-\d\d\b", page.read_text()))
    assert quoted <= _golden_values(), sorted(quoted - _golden_values())


def test_the_quick_start_output_is_the_golden_default_run():
    """The README's sample output of ``python train.py model=scratch`` has the golden run's
    numbers, formatted as the run summary formats them."""
    from rnnlab.training.record import summary_text

    golden = GOLDEN["model=scratch"]
    block = README.read_text().split("## Quick start", 1)[1].split("```")[1]
    record = {
        **golden,
        "config": {
            "model": {
                "cell": "scratch",
                "nonlinearity": "tanh",
                "hidden_size": 32,
                "num_layers": 1,
                "lr": 0.01,
                "loss": "last",
            }
        },
        "fit_seconds": 0.0,
    }
    expected = summary_text(record, Path("RUN")).splitlines()
    shown = block.strip().splitlines()
    # the first line ends in the run's time and the last two name its directory: those vary
    assert shown[0].split(" in ")[0] == expected[0].split(" in ")[0]
    assert shown[1] == expected[1]


def test_the_options_list_is_the_help():
    """docs/configuration.md's list of keys is what ``python train.py --help`` prints."""
    from rnnlab.config.hydra_setup import help_text

    keys = help_text().split("== Keys ==\n", 1)[1].split("\n==", 1)[0].strip("\n")
    page = (ROOT / "docs" / "configuration.md").read_text()
    listed = page.split("## Options", 1)[1].split("```\n", 1)[1].split("```", 1)[0]
    assert listed.strip("\n") == keys


def console_examples() -> list[tuple[str, str]]:
    """Each ``$ python train.py ...`` line of docs/errors.md and the line it shows printed."""
    lines = (ROOT / "docs" / "errors.md").read_text().splitlines()
    return [
        (line[2:], lines[i + 1])
        for i, line in enumerate(lines)
        if line.startswith("$ python train.py ")
    ]


#: Where an example's line starts to describe the machine it ran on.
MACHINE_TAILS = (", and this machine has ", " here (torch ")


@pytest.mark.slow
@pytest.mark.parametrize("command, shown", console_examples(), ids=lambda v: v[:40])
def test_the_error_examples_are_what_train_py_prints(command, shown):
    import shlex
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, *shlex.split(command)[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    printed = proc.stderr.strip()
    for tail in MACHINE_TAILS:
        printed, shown = printed.split(tail)[0], shown.split(tail)[0]
    assert printed == shown


def test_the_error_page_shows_examples():
    assert len(console_examples()) >= 6


@pytest.mark.parametrize(
    "name",
    [
        "bench.json",
        "bench_replicas_20epochs.json",
        "bench_replicas_e2e_60epochs.json",
        "bench_fused.json",
        "bench_fused_clipping.json",
        "bench_fused_studies.json",
    ],
)
def test_the_performance_page_quotes_the_benchmarks_json(name: str):
    """Every target the benchmark measured is quoted as ``python -m rnnlab.bench`` prints it
    (three significant digits), and the page names the JSON it comes from."""
    page = (ROOT / "docs" / "performance.md").read_text()
    report = json.loads((ROOT / "docs" / name).read_text())
    assert f"({name})" in page or f"`docs/{name}`" in page or f"docs/{name}" in page
    for target in report["targets"]:
        assert f"{target['value']:.3g}" in page, target
