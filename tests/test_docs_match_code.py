"""Code shown in spec/*.md runs, and does what the text says."""

from __future__ import annotations

import re
from pathlib import Path

from jacobi_oracle.models.registry import build_model
from jacobi_oracle.oracle.exact import check_exact
from jacobi_oracle.reference.composed import ComposedStrategy
from jacobi_oracle.spec.model import Problem
from jacobi_oracle.spec.sampling import Sampling

SPEC = Path(__file__).resolve().parent.parent / "spec"


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.DOTALL)


def test_the_composition_example_builds_a_lossless_variant() -> None:
    (block,) = python_blocks((SPEC / "composition.md").read_text())
    namespace: dict[str, object] = {}
    exec(block, namespace)
    mine = namespace["mine"]
    assert isinstance(mine, ComposedStrategy)
    case = build_model("hash-tiny")
    verdict = check_exact(mine, Problem(case.model, case.condition, case.layout, Sampling()))
    assert verdict.lossless, verdict


def test_every_spec_page_linked_from_the_index_exists() -> None:
    index = (SPEC / "README.md").read_text()
    for target in re.findall(r"\]\(([\w./-]+\.md)\)", index):
        assert (SPEC / target).exists(), target


def test_every_spec_page_is_in_the_index() -> None:
    index = (SPEC / "README.md").read_text()
    linked = set(re.findall(r"\]\(([\w.-]+\.md)", index))
    pages = {page.name for page in SPEC.glob("*.md")} - {"README.md"}
    assert pages - linked == set(), "spec pages missing from spec/README.md"


def markdown_files(root: Path) -> list[Path]:
    """The project's own markdown: tracked folders, not virtual environments or caches."""
    skip = {".venv", ".git", "node_modules", ".pytest_cache", ".mypy_cache", ".ruff_cache", "build"}
    return [md for md in root.rglob("*.md") if not skip & set(md.relative_to(root).parts)]


def test_every_relative_link_in_the_docs_resolves() -> None:
    root = SPEC.parent
    broken = []
    for md in markdown_files(root):
        for target in re.findall(r"\]\(([^)\s]+)\)", md.read_text()):
            path = target.split("#")[0]
            if re.match(r"[a-z]+:", target) or not path:  # a URL, or an anchor on the same page
                continue
            if not (md.parent / path).exists():
                broken.append(f"{md.relative_to(root)} -> {target}")
    assert broken == []


def test_ci_runs_the_readme_test_command() -> None:
    root = SPEC.parent
    blocks = re.findall(r"```bash\n(.*?)\n```", (root / "README.md").read_text(), flags=re.DOTALL)
    assert len(blocks) >= 2, "README opens with the two commands"
    main_job, test_command = blocks[0].strip(), blocks[1].strip()
    assert "jacobi-oracle demo" in main_job
    assert test_command in (root / ".ci" / "run").read_text()
