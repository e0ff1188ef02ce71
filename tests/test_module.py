"""Normsweep used the way the Snakemake workflow catalog deploys workflows: from an
empty folder outside the repository, a Snakefile with `module normsweep: ...` and
`use rule * from normsweep`, and the folder's own config/config.yaml."""

import subprocess

import yaml

from conftest import BIN, ROOT, SMALL_MNIST, job_counts

SNAKEFILE = f"""configfile: "config/config.yaml"

module normsweep:
    snakefile: "{ROOT / "workflow" / "Snakefile"}"
    config: config

use rule * from normsweep
"""


def test_a_users_folder_runs_the_workflow_as_a_module(tmp_path):
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "config").mkdir()
    config = {"study": "mine", "models": {"lenet": {
        "data": str(SMALL_MNIST), "references": {"none": "none", "classic": {"mean": 0.1307, "std": 0.3081}},
        "baseline": "classic", "training": {"epochs": 1, "train_subset": 128, "test_subset": 100, "threads": 1}}}}  # fmt: skip
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))

    def snakemake(*args):
        return subprocess.run([str(BIN / "snakemake"), "--cores", "2", *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=600)  # fmt: skip

    plan = snakemake("-n", "--quiet", "rules")
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert job_counts(plan.stdout)["train_cell"] == 2, plan.stdout
    tables = (
        "results/mine/lenet/tables/cells.csv"  # the cells and their table (the figures: test_workflow.py)
    )
    run = snakemake(tables)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (
        len((tmp_path / tables).read_text().splitlines()) == 3
    )  # a header and two cells, in the user's folder
    assert not (ROOT / "results/mine").exists()
    again = snakemake("-n", tables)
    assert "Nothing to be done" in again.stdout + again.stderr
