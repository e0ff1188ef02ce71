"""Rules of the code base that a reviewer would otherwise check by hand."""

import ast

from conftest import ROOT


def test_no_function_of_the_package_is_longer_than_100_lines():
    """A 177-line training loop hid its state; long functions get a type or helpers."""
    long = []
    for path in sorted((ROOT / "src" / "normsweep").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 100:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {lines} lines")
    assert not long, long


def test_no_module_of_the_package_is_longer_than_400_lines():
    """A 704-line table.py did three jobs; a module over 400 lines is split by what it does."""
    long = [
        f"{path.relative_to(ROOT)}: {n} lines"
        for path in sorted((ROOT / "src" / "normsweep").rglob("*.py"))
        if (n := len(path.read_text().splitlines())) > 400
    ]
    assert not long, long


def test_no_import_cycle_in_the_package():
    """The model axis imported in a circle of five files, and pack <-> multinet. No
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
    """The fingerprint hashes the subpackages that compute a cell: every module the runner
    imports must be among them (one left out would let a change of it resume a checkpoint made
    by other code), and the workflow's side is not (editing a plot must discard nothing)."""
    import grimp

    from normsweep.core.results import package_modules
    from normsweep.core.spec import TRAINING_SUBPACKAGES

    graph = grimp.build_graph("normsweep")
    hashed = set(package_modules(*TRAINING_SUBPACKAGES))
    imported = {
        m.removeprefix("normsweep.") for m in graph.find_upstream_modules("normsweep.training.runner")
    }
    imported.discard("normsweep")
    assert imported - hashed == set()
    assert not {m.split(".")[0] for m in hashed} & {"study", "analysis", "cluster", "monitoring"}


def test_the_workflow_side_imports_no_torch():
    """A dry run, plan.py, status.py and the data rules on a login node stay fast: the config,
    the study, the analysis, the cluster, the monitoring and the data but its batches import
    without torch (their torch is imported inside the functions that need it; torch and its
    torch._dynamo take 4 s to import on a 2-core machine)."""
    import subprocess
    import sys

    from normsweep.core.results import package_modules

    workflow_side = [
        f"normsweep.{m}"
        for m in package_modules("core", "study", "analysis", "cluster", "monitoring", "data")
        if m != "data.batches"  # the tensors the training reads
    ]
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in workflow_side)
    code += "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]", run.stdout[:500]
