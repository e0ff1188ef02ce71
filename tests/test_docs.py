"""Every command block the docs mark runnable (`<!-- run -->` before it) runs here, from
the repository's root; blocks that need a cluster, a GPU or a fresh machine are marked with the
reason (`<!-- run: needs SLURM -->`) and reported as skipped."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"<!-- run(?:: (?P<why>[^>]*?))? -->\n```(?:bash|sh)\n(?P<body>.*?)```", re.S)
MARKED = [(page, m) for page in PAGES for m in BLOCK.finditer(page.read_text())]


def test_the_docs_mark_blocks_to_run_and_say_why_others_do_not():
    runnable = [m for _, m in MARKED if not m["why"]]
    assert len(runnable) >= 3
    reasons = [m["why"] for _, m in MARKED if m["why"]]
    assert reasons and all(re.search(r"SLURM|GPU|CI", why) for why in reasons), reasons


@pytest.mark.parametrize(
    "page, body, why",
    [(page.relative_to(ROOT).as_posix(), m["body"], m["why"]) for page, m in MARKED],
    ids=[f"{page.name}:{m['body'].splitlines()[0][:50]}" for page, m in MARKED],
)
def test_a_marked_command_block_runs(page, body, why):
    if why:
        pytest.skip(f"{page}: {why}")
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", body], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert run.returncode == 0, f"{page}:\n{body}\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"


def test_the_layout_in_development_md_is_the_trees():
    """docs/development.md draws the package's layers: every subpackage and module of
    src/normsweep is named there, under its folder, and nothing that is not."""
    text = (ROOT / "docs" / "development.md").read_text()
    drawn = {
        folder: {name.strip() for name in names.split(",")}
        for folder, names in re.findall(r"^  ([a-z_/]+)/ \[([^\]]*)\]", text, re.M)
    }
    from normsweep.core.results import package_modules

    tree: dict[str, set[str]] = {}
    for module in package_modules():
        folder, _, name = module.rpartition(".")
        modules = tree.setdefault(folder.replace(".", "/"), set())
        if name != "__init__":
            modules.add(name)
    assert tree.pop("") == set()  # nothing at the package's top but its __init__: only subpackages
    assert drawn == tree
