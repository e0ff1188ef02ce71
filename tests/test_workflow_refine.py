"""The refinement with Optuna in rounds, through the real workflow: trials trained as one pack
per round, a kill mid-round, more trials later."""

import json
import os
import signal
import subprocess
import time

import matplotlib.image as mpimg
import pandas as pd
import yaml

from conftest import BIN, ROOT, job_counts, snakemake, tiny_config


def test_optuna_refines_in_rounds_as_packs_survives_a_kill_and_grows_with_n_trials(tmp_path):
    """The refinement after the grid, each round's trials one pack (cluster.pack; one job per
    trial cell: tests/test_slurm.py); kill -9 of snakemake and its running round pack mid-epoch:
    after --unlock and a rerun, the pack resumes after its last finished epoch and the study
    holds exactly the warm start plus n_trials finished trials, one per asked trial; more
    trials later grow the last round, which asks a new point and trains only it."""
    cfg = tiny_config(mean=[0.0, 1.0], std=[0.5])
    cfg["cluster"] = {"pack": 4}
    block = cfg["models"]["lenet"]
    block["references"] = {"classic": {"mean": 0.1307, "std": 0.3081}, "none": "none"}
    block["training"].update(epochs=2, train_subset=600, deterministic=True)  # epoch 2 long enough to kill in
    block["optuna"] = {"n_trials": 3, "batch": 2, "mean": [-1, 2], "std": [0.05, 1], "retrain_seeds": [1, 2]}
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    plan = snakemake("-n", "--quiet", "rules", "--directory", str(tmp_path), cwd=tmp_path)
    counts = job_counts(plan.stdout)
    assert counts["optuna_ask"] == 2 and counts["optuna_tell"] == 2, plan.stdout  # rounds of 2 and 1 trials
    assert counts["train_pack"] == 1 and "train_cell" not in counts, plan.stdout  # the 4 configured cells
    command = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "workflow" / "Snakefile"), "--profile",
               str(ROOT / "profiles" / "local"), "--cores", "1", "--directory", str(tmp_path)]  # fmt: skip
    first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)  # fmt: skip
    checkpoint = tmp_path / "results/tiny/lenet/checkpoints/optuna/round~0.pt"  # saved after epoch 1
    out = tmp_path / "results/tiny/lenet/optuna"
    deadline = time.time() + 600
    while time.time() < deadline and not checkpoint.exists():
        assert first.poll() is None, "snakemake ended before round 0's pack saved a checkpoint"
        time.sleep(0.1)
    assert checkpoint.exists(), "round 0's pack saved no checkpoint in time"
    os.killpg(first.pid, signal.SIGKILL)  # snakemake and the pack it runs, mid-epoch 2
    first.wait()
    asked = json.loads((out / "round~0/asked.json").read_text())["trials"]
    members = [f"mean~{t['mean']}/std~{t['std']}/seed~1998" for t in asked]
    assert not (out / "round~0/pack.json").exists()
    assert not any((tmp_path / f"results/tiny/lenet/cells/{m}.json").exists() for m in members)
    locked = snakemake("--cores", "1", "--directory", str(tmp_path), cwd=tmp_path)  # as the README says
    assert locked.returncode != 0 and "lock" in (locked.stdout + locked.stderr).lower()
    assert snakemake("--unlock", "--directory", str(tmp_path), cwd=tmp_path).returncode == 0
    run = snakemake("--cores", "2", "--directory", str(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    text = (tmp_path / "logs/tiny/lenet/optuna/round~0.pack.log").read_text()  # the rerun's (started afresh)
    assert "pack round~0 resumed from" in text and "after epoch 1" in text, text
    for member in members:  # the members' own logs, appended: each epoch finished once
        text = (tmp_path / f"logs/tiny/lenet/train/{member}.log").read_text()
        assert text.count("epoch 1/2") == 1 and text.count("epoch 2/2") == 1, text
        assert "(pack round~0 of 2 cells)" in text

    rounds = [json.loads((out / f"round~{r}/asked.json").read_text())["trials"] for r in (0, 1)]
    assert [len(r) for r in rounds] == [2, 1]
    for number, trials in enumerate(rounds):  # each round's trials, trained as its one pack
        record = json.loads((out / f"round~{number}/pack.json").read_text())
        assert sorted(record["members"]) == sorted([t["mean"], t["std"]] for t in trials)
        for path in record["results"]:
            result = json.loads((tmp_path / path).read_text())
            assert result["pack"] == f"round~{number}" and result["pack_size"] == len(trials)
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
    # one more trial: round 1 grows by it (a new point), rounds before it untouched
    finished = {p: p.stat().st_mtime_ns for p in results}
    block["optuna"]["n_trials"] = 4
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    run = snakemake("--cores", "2", "--directory", str(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    trials = pd.read_parquet(out / "trials.parquet")
    assert (trials["state"] == "COMPLETE").sum() == warm["added"] + 4
    sizes = [len(json.loads((out / f"round~{r}/asked.json").read_text())["trials"]) for r in (0, 1)]
    assert sizes == [2, 2] and not (out / "round~2").exists()
    assert json.loads((out / "round~0/asked.json").read_text())["trials"] == rounds[0]  # round 0 untouched
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # no finished cell trained again
    grown = json.loads((out / "round~1/pack.json").read_text())
    assert len(grown["members"]) == 2 and len(grown["results"]) == 2
    assert (
        "round 1: 2 trial cells, 1 to train"
        in (tmp_path / "logs/tiny/lenet/optuna/round~1.pack.log").read_text()
    )
