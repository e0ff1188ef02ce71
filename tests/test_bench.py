"""scripts/bench/gpu.py --quick: the GPU benchmark's own code, on the CPU at toy sizes, so that
it cannot rot between the days a GPU is at hand."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_bench_runs_quick_on_the_cpu_and_writes_its_tables(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}  # as on a bare GPU node: no install
    run = subprocess.run([sys.executable, "scripts/bench/gpu.py", "--quick", "--out", str(tmp_path)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((tmp_path / "bench_gpu.json").read_text())
    assert report["device"] == "cpu" and report["mode"] == "quick"
    assert all(check["ok"] for check in report["correctness"].values()), report["correctness"]
    assert set(report["correctness"]) == {"pack_vs_cells", "eval_pack_vs_cells", "kill_and_resume"}
    protocols = {(r["precision"], r["protocol"]) for r in report["training"]}
    assert {("fp32", "notebook"), ("tf32", "normsweep cell"), ("bf16", "pack of 2")} <= protocols
    for row in report["training"]:
        assert row["cell_epochs_per_s"] > 0
        assert row["study_gpu_hours"] == 225 * 30 / row["cell_epochs_per_s"] / 3600
    evaluation = {(r["protocol"], r["channels_last"], r["precision"]) for r in report["evaluation"]}
    assert {("plain model(x)", True, "bf16"), ("eval pack of 2", False, "fp32")} <= evaluation
    assert report["data"]["images_per_s"] > 0
    assert not {"pandas", "scipy", "yaml", "snakemake", "optuna", "matplotlib"} & set(
        report["third_party_modules"]
    )
    table = (tmp_path / "bench_gpu.md").read_text()
    assert "| fp32 | notebook | 1 |" in table and "## Correctness on the device" in table
