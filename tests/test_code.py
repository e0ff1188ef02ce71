"""Rules of the code base that a reviewer would otherwise check by hand."""

import ast

from conftest import ROOT


def test_no_function_of_the_package_is_longer_than_100_lines():
    """Issue 20: a 177-line training loop hid its state; long functions get a type or helpers."""
    long = []
    for path in sorted((ROOT / "src" / "normsweep").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 100:
                    long.append(f"{path.name}:{node.lineno} {node.name}: {lines} lines")
    assert not long, long


def test_no_module_of_the_package_is_longer_than_400_lines():
    """Issue 27: a 704-line table.py did three jobs; a module over 400 lines is split by what it does."""
    long = [
        f"{path.name}: {n} lines"
        for path in sorted((ROOT / "src" / "normsweep").glob("*.py"))
        if (n := len(path.read_text().splitlines())) > 400
    ]
    assert not long, long


def test_no_import_cycle_in_the_package():
    """Issue 27: the model axis imported in a circle of five files, and pack <-> multinet. No
    module may reach itself through its imports (function-level imports included); the layers
    themselves are pyproject.toml's import-linter contract, run by .ci/run."""
    import grimp

    graph = grimp.build_graph("normsweep")
    modules = sorted(m for m in graph.modules if m.startswith("normsweep."))
    cycles = [
        f"{a} <-> {b}"
        for i, a in enumerate(modules)
        for b in modules[i + 1 :]
        if graph.chain_exists(importer=a, imported=b) and graph.chain_exists(importer=b, imported=a)
    ]
    assert not cycles, cycles


def test_the_layers_contract_holds():
    """The import-linter contract of pyproject.toml, as CI runs it (a broken layer fails here
    too, with import-linter's report)."""
    import subprocess
    import sys
    from pathlib import Path

    run = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout[-3000:]


def test_a_checkpoint_fingerprints_the_training_code_only():
    """Issue 28: the fingerprint hashed every module, so editing plots.py discarded every
    running checkpoint. It hashes the runner and what it imports (the import graph says
    which), and nothing else."""
    import grimp

    from normsweep.spec import TRAINING_CODE

    graph = grimp.build_graph("normsweep")
    training = {m.split(".")[-1] for m in graph.find_upstream_modules("normsweep.runner")} | {"runner"}
    assert set(TRAINING_CODE) == training
    assert not {"plots", "status", "table", "plan"} & set(TRAINING_CODE)
