"""The refinement with Optuna in rounds, through the real workflow: trials as cells, a kill
mid-round, more trials later, and rounds trained as packs."""

import json
import os
import signal
import subprocess
import time

import matplotlib.image as mpimg
import pandas as pd
import yaml

from conftest import BIN, ROOT, job_counts, snakemake, tiny_config


def test_optuna_refines_in_rounds_survives_a_kill_and_grows_with_n_trials(tmp_path):
    """The refinement after the grid, its trials ordinary cells; kill -9 of snakemake (and its
    running trial cell) mid-epoch in a round: after --unlock and a rerun, the cell resumes after
    its last finished epoch and the study holds exactly the warm start plus n_trials finished
    trials, one per asked trial; more trials later run only the new rounds."""
    cfg = tiny_config(mean=[0.0, 1.0], std=[0.5])
    block = cfg["models"]["lenet"]
    block["references"] = {"classic": {"mean": 0.1307, "std": 0.3081}, "none": "none"}
    block["training"].update(epochs=2, train_subset=900, deterministic=True)  # epoch 2 long enough to kill in
    block["optuna"] = {"n_trials": 3, "batch": 2, "mean": [-1, 2], "std": [0.05, 1], "retrain_seeds": [1, 2]}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    plan = snakemake("-n", "--quiet", "rules", "--directory", str(tmp_path), cwd=tmp_path)
    counts = job_counts(plan.stdout)
    assert counts["optuna_ask"] == 2 and counts["optuna_tell"] == 2, plan.stdout  # rounds of 2 and 1 trials
    command = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "workflow" / "Snakefile"), "--profile",
               str(ROOT / "profiles" / "local"), "--cores", "1", "--directory", str(tmp_path)]  # fmt: skip
    first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)  # fmt: skip
    checkpoints = tmp_path / "results/tiny/lenet/checkpoints"
    out = tmp_path / "results/tiny/lenet/optuna"

    def trial_checkpoints():  # of a trial cell (the round has been asked), not of a configured cell
        if not (out / "round~0/asked.json").exists():
            return []
        asked = {
            (t["mean"], t["std"]) for t in json.loads((out / "round~0/asked.json").read_text())["trials"]
        }
        return [p for p in checkpoints.rglob("*.pt") if (p.parts[-3][5:], p.parts[-2][4:]) in asked]

    deadline = time.time() + 600
    while time.time() < deadline and not trial_checkpoints():
        assert first.poll() is None, "snakemake ended before a trial cell saved a checkpoint"
        time.sleep(0.1)
    killed = trial_checkpoints()
    assert killed, "no trial cell saved a checkpoint in time"
    os.killpg(first.pid, signal.SIGKILL)  # snakemake and the cell it runs, mid-epoch 2
    first.wait()
    result = tmp_path / "results/tiny/lenet/cells" / killed[0].relative_to(checkpoints).with_suffix(".json")
    log = tmp_path / "logs/tiny/lenet/train" / killed[0].relative_to(checkpoints).with_suffix(".log")
    assert not result.exists()
    locked = snakemake("--cores", "1", "--directory", str(tmp_path), cwd=tmp_path)  # as the README says
    assert locked.returncode != 0 and "lock" in (locked.stdout + locked.stderr).lower()
    assert snakemake("--unlock", "--directory", str(tmp_path), cwd=tmp_path).returncode == 0
    run = snakemake("--cores", "2", "--directory", str(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    text = log.read_text()  # the rerun's log (snakemake starts a job's log afresh)
    assert "resumed from" in text and "after epoch 1" in text
    assert "epoch 1/2" not in text and text.count("epoch 2/2") == 1  # only the interrupted epoch again

    rounds = [json.loads((out / f"round~{r}/asked.json").read_text())["trials"] for r in (0, 1)]
    assert [len(r) for r in rounds] == [2, 1]
    warm = json.loads((out / "warmstart.json").read_text())
    assert warm["added"] == 3  # the 2 grid cells and classic; "none" is no point of the space
    trials = pd.read_parquet(out / "trials.parquet")
    optuna_trials = trials[trials["user_attrs_source"] == "optuna"]
    assert len(optuna_trials) == 3 and (optuna_trials["state"] == "COMPLETE").all()
    assert optuna_trials["user_attrs_cell"].is_unique  # every trial counted once
    complete = trials[trials["state"] == "COMPLETE"]
    assert len(complete) == warm["added"] + 3 and complete["number"].is_unique
    assert json.loads((out / "round~1/told.json").read_text())["finished"] == warm["added"] + 3
    best = json.loads((out / "best_seeds.json").read_text())
    assert best["accuracy"] == complete["value"].max() and len(best["seeds_accuracy"]) == 2
    for name in ("history.png", "trials_over_grid.png"):
        assert mpimg.imread(out / name).shape[0] > 300
    # every new trial wrote an ordinary cell result (seed 1998), beside the grid's
    results = list((tmp_path / "results/tiny/lenet/cells").rglob("seed~*.json"))
    assert len(results) >= 4 + 1 + 2  # 4 configured cells, new points, the best retrained with 2 seeds
    refined = pd.read_parquet(tmp_path / "results/tiny/lenet/tables/cells_refined.parquet")
    assert len(refined) == len(results)  # the refined points land in the tidy table too
    again = snakemake("-n", "--directory", str(tmp_path), cwd=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr
    # more trials: only the new rounds run (round 1 grows by one trial, round 2 is new)
    block["optuna"]["n_trials"] = 5
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    run = snakemake("--cores", "2", "--directory", str(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    trials = pd.read_parquet(out / "trials.parquet")
    assert (trials["state"] == "COMPLETE").sum() == warm["added"] + 5
    sizes = [len(json.loads((out / f"round~{r}/asked.json").read_text())["trials"]) for r in (0, 1, 2)]
    assert sizes == [2, 2, 1]
    assert json.loads((out / "round~0/asked.json").read_text())["trials"] == rounds[0]  # round 0 untouched


def test_with_packs_each_round_trains_its_trials_as_one_pack(tmp_path):
    cfg = tiny_config(mean=[0.0, 1.0], std=[0.5])
    cfg["cluster"] = {"pack": 4}
    cfg["models"]["lenet"]["references"] = {"classic": {"mean": 0.1307, "std": 0.3081}}
    cfg["models"]["lenet"]["optuna"] = {"n_trials": 3, "batch": 2, "retrain_seeds": [1998]}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    run = snakemake("--cores", "2", "--directory", str(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    out = tmp_path / "results/tiny/lenet/optuna"
    for number, size in ((0, 2), (1, 1)):
        asked = json.loads((out / f"round~{number}/asked.json").read_text())["trials"]
        record = json.loads((out / f"round~{number}/pack.json").read_text())
        assert (
            sorted(record["members"]) == sorted([t["mean"], t["std"]] for t in asked) and len(asked) == size
        )
        for path in record["results"]:
            result = json.loads((tmp_path / path).read_text())
            assert result["pack"] == f"round~{number}" and result["pack_size"] == size
            log = tmp_path / path.replace("results/tiny/lenet/cells", "logs/tiny/lenet/train").replace(
                ".json", ".log"
            )
            assert f"(pack round~{number} of {size} cells)" in log.read_text()
    warm = json.loads((out / "warmstart.json").read_text())
    assert json.loads((out / "round~1/told.json").read_text())["finished"] == warm["added"] + 3
    again = snakemake("-n", "--directory", str(tmp_path), cwd=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr
