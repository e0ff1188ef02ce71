"""Packs: K cells trained as one stacked model against the same cells trained one by one.

Tolerances, and why: a pack runs the same arithmetic as a one-cell run, but through batched
kernels (vmap turns a convolution of K members into one grouped convolution), which round
differently in the last bits (the first step's loss is equal; gradients differ by ~1e-6
relative). At the protocol's learning rate (Adadelta 1.0) early training is chaotic: the
one-cell code against itself on 2 CPU threads instead of 1 differed by 1e-6 after 10 steps
and 3e-3 after 20 on one machine, and by 2e-7 after 20 on another
(scripts/bench/thread_drift.py measures it: a machine's property, so no test asserts it).
So the step-by-step check runs at lr 0.01, where the dynamics are smooth and any error in the
normalization, the batches, the dropout masks or the optimizer shows as a large difference;
at lr 1.0 the tests check the first step and the accuracy after a short run.
"""

from __future__ import annotations

import math
import os
import signal

import pytest
import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from conftest import SMALL_MNIST, kill_in_epoch_2, train_one
from normsweep.core.errors import Interrupted, PackError
from normsweep.core.results import STATUS_DIVERGED, STATUS_OK
from normsweep.core.spec import CellSpec, TrainConfig
from normsweep.data import batches
from normsweep.data.mnist import load_mnist
from normsweep.study.config import validate_config
from normsweep.training.checkpoint import save_atomic
from normsweep.training.members import stacked
from normsweep.training.members.stacked import Stacked
from normsweep.training.plateau import Plateau
from normsweep.training.runner import train_cells


@pytest.fixture(scope="module")
def mnist():
    tr = load_mnist(SMALL_MNIST, train=True, limit=6000)
    te = load_mnist(SMALL_MNIST, train=False, limit=200)  # each evaluation is most of a test's time
    return batches.TensorData.from_uint8(tr.images, tr.labels), batches.TensorData.from_uint8(
        te.images, te.labels
    )


def spec(mean, std, seed=1998):
    return CellSpec("lenet", "mnist", str(mean), str(std), mean, std, seed)


WELL_CONDITIONED = [([0.1307], [0.3081]), (None, None), ([0.0], [1.0])]


def one_cell_steps(mean, std, tr, te, config):
    steps = []
    result = train_one(
        spec(mean, std), tr, te, config, on_step=lambda n, members, losses: steps.append(float(losses[0]))
    )
    return result, steps


def pack_steps(norms, tr, te, config, **kwargs):
    steps: dict[int, list[float]] = {i: [] for i in range(len(norms))}

    def record(n, members, losses):
        for i, loss in zip(members, losses.tolist(), strict=True):
            steps[i].append(loss)

    results = train_cells([spec(m, s) for m, s in norms], tr, te, config, on_step=record, **kwargs)
    return results, steps


def max_relative(a, b):
    return max(abs(x - y) / abs(x) for x, y in zip(a, b, strict=True))


def test_pack_members_follow_their_one_cell_runs_step_by_step(mnist):
    tr, te = mnist
    part = batches.TensorData(tr.images[:640], tr.labels[:640])
    config = TrainConfig(epochs=2, threads=1, deterministic=True, lr=0.01)
    results, steps = pack_steps(WELL_CONDITIONED, part, te, config)
    assert len(steps[0]) == 2 * 10  # 640 images in batches of 64, twice
    for i, (mean, std) in enumerate(WELL_CONDITIONED):
        alone, alone_steps = one_cell_steps(mean, std, part, te, config)
        print(f"{mean}/{std}: step losses differ by {max_relative(alone_steps, steps[i]):.1e} (20 steps)")
        assert max_relative(alone_steps, steps[i]) < 1e-5, (mean, std)  # measured: up to 3.6e-7 in 100 steps
        assert results[i].final_accuracy == pytest.approx(alone.final_accuracy, abs=0.0051)  # 1 of 200 images
        assert [e.lr for e in results[i].epochs] == [e.lr for e in alone.epochs]
        assert results[i].pack_size == 3 and results[i].status == STATUS_OK


def test_at_the_protocol_rate_the_first_step_agrees_and_short_runs_end_alike(mnist):
    tr, te = mnist
    part = batches.TensorData(tr.images[:1280], tr.labels[:1280])
    config = TrainConfig(epochs=1, threads=1, deterministic=True)  # Adadelta 1.0
    results, steps = pack_steps(WELL_CONDITIONED, part, te, config)
    for i, (mean, std) in enumerate(WELL_CONDITIONED):
        alone, alone_steps = one_cell_steps(mean, std, part, te, config)
        assert abs(alone_steps[0] - steps[i][0]) / alone_steps[0] < 1e-6  # same weights, batch and mask
        # after 20 chaotic steps: as close as two thread counts of the one-cell code get
        assert results[i].final_accuracy == pytest.approx(alone.final_accuracy, abs=0.02)


def test_a_diverging_member_is_recorded_and_the_others_go_on(mnist):
    tr, te = mnist
    config = TrainConfig(epochs=2, threads=1, deterministic=True, lr=0.01)
    norms = [WELL_CONDITIONED[0], ([3.0], [1e-39]), WELL_CONDITIONED[1]]  # (x - 3) / 1e-39 overflows
    results, steps = pack_steps(norms, batches.TensorData(tr.images[:640], tr.labels[:640]), te, config)
    assert results[1].status == STATUS_DIVERGED and math.isnan(results[1].final_accuracy)
    assert [e.epoch for e in results[1].epochs] == [1]  # stopped in its first epoch
    assert len(steps[1]) == 10 and len(steps[0]) == 20  # it left the pack after its epoch 1
    for i in (0, 2):
        alone, alone_steps = one_cell_steps(
            *norms[i], batches.TensorData(tr.images[:640], tr.labels[:640]), te, config
        )
        assert results[i].status == STATUS_OK
        assert max_relative(alone_steps, steps[i]) < 1e-5
        assert [e.test_accuracy for e in results[i].epochs] == pytest.approx(
            [e.test_accuracy for e in alone.epochs], abs=0.004
        )


def test_plateau_rule_equals_torchs_scheduler_member_by_member():
    rng = torch.Generator().manual_seed(0)
    sequences = [
        [0.5] * 30,  # stalls from the start: cut after 11 epochs, again after 22
        [0.1 + 0.01 * e for e in range(30)],  # always improving: never cut
        (torch.rand(30, generator=rng) * 0.2 + 0.7).tolist(),  # noise
    ]
    ours = Plateau(lr=[1.0, 1.0, 1.0])
    theirs = []
    for _ in sequences:
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        theirs.append((optimizer, ReduceLROnPlateau(optimizer, mode="max")))
    for epoch in range(30):
        ours.step([seq[epoch] for seq in sequences])
        for (_optimizer, scheduler), seq in zip(theirs, sequences, strict=True):
            scheduler.step(seq[epoch])
        assert ours.lr == [opt.param_groups[0]["lr"] for opt, _ in theirs], epoch
    assert ours.lr[0] == pytest.approx(0.01) and ours.lr[1] == 1.0


def test_members_whose_accuracy_stalls_get_their_own_rate_cut(mnist):
    tr, te = mnist
    small = batches.TensorData(tr.images[:128], tr.labels[:128])
    config = TrainConfig(epochs=13, threads=1)
    # std 1e6: every input is ~0, the network sees nothing and its accuracy cannot move
    few = batches.TensorData(te.images[:100], te.labels[:100])  # 13 evaluations: the test's cost
    results = train_cells([spec([0.1307], [0.3081]), spec([0.0], [1e6])], small, few, config)
    learning, blind = results
    assert [e.lr for e in blind.epochs][-1] == pytest.approx(0.1)  # cut after 11 flat epochs
    assert max(e.test_accuracy for e in blind.epochs) < 0.2  # chance level: only the biases learn
    assert [e.lr for e in learning.epochs] == [1.0] * 13  # its own rate, untouched


def test_a_killed_pack_resumes_after_its_last_finished_epoch(mnist, tmp_path, monkeypatch):
    tr, te = mnist
    small = batches.TensorData(tr.images[:320], tr.labels[:320])  # 5 steps an epoch
    config = TrainConfig(epochs=2, threads=1, deterministic=True)
    norms = [WELL_CONDITIONED[0], ([2.0], [0.2])]
    whole = train_cells([spec(m, s) for m, s in norms], small, te, config)

    checkpoint = tmp_path / "pack.pt"
    kill_in_epoch_2(Stacked, "evaluate", lambda: train_cells([spec(m, s) for m, s in norms], small, te, config,
                                                             checkpoint=checkpoint))  # fmt: skip
    assert checkpoint.exists()
    steps = []
    resumed = train_cells(
        [spec(m, s) for m, s in norms],
        small,
        te,
        config,
        checkpoint=checkpoint,
        on_step=lambda n, members, losses: steps.append(1),
    )
    assert len(steps) == 5  # epoch 2 only: epoch 1 came from the checkpoint
    for a, b in zip(whole, resumed, strict=True):
        assert [e.test_accuracy for e in a.epochs] == [e.test_accuracy for e in b.epochs]
        assert [e.train_loss for e in a.epochs] == [e.train_loss for e in b.epochs]


def test_a_checkpoint_of_other_cells_is_refused(mnist, tmp_path):
    tr, te = mnist
    small = batches.TensorData(tr.images[:128], tr.labels[:128])
    config = TrainConfig(epochs=2, threads=1)
    checkpoint = tmp_path / "pack.pt"
    save_atomic(checkpoint, {"names": ["9/9"], "fingerprint": [{}]})
    with pytest.raises(PackError, match="checkpoint of other cells"):
        train_cells([spec([0.0], [1.0])], small, te, config, checkpoint=checkpoint)


def test_a_pack_checkpoint_made_by_other_settings_starts_afresh(mnist, tmp_path, monkeypatch, caplog):
    """A pack killed mid-run, then lr changed: it resumed the old optimizer state and
    recorded the new lr. Now the checkpoint's fingerprint differs and the pack starts afresh."""
    tr, te = mnist
    small = batches.TensorData(tr.images[:256], tr.labels[:256])
    norms = [WELL_CONDITIONED[0], WELL_CONDITIONED[1]]
    checkpoint = tmp_path / "pack.pt"
    config = TrainConfig(epochs=2, threads=1, deterministic=True)
    kill_in_epoch_2(Stacked, "evaluate", lambda: train_cells([spec(m, s) for m, s in norms], small, te, config,
                                                             checkpoint=checkpoint))  # fmt: skip
    slower = TrainConfig(epochs=2, threads=1, deterministic=True, lr=0.5)
    steps = []
    with caplog.at_level("WARNING", logger="normsweep.training.checkpoint"):
        results = train_cells([spec(m, s) for m, s in norms], small, te, slower, checkpoint=checkpoint,
                                  on_step=lambda n, members, losses: steps.append(1))  # fmt: skip
    assert "other settings (training.lr changed): starting afresh" in caplog.text
    assert len(steps) == 2 * 4  # both epochs trained again
    fresh = train_cells([spec(m, s) for m, s in norms], small, te, slower)
    for a, b in zip(fresh, results, strict=True):
        assert [e.lr for e in b.epochs] == [0.5, 0.5]
        assert [e.train_loss for e in a.epochs] == [e.train_loss for e in b.epochs]


def test_a_pack_too_large_for_the_device_names_pack_and_what_fits():
    need = stacked.member_bytes(1_199_882, 64, stacked.lenet_activations_per_sample())
    with pytest.raises(PackError, match=r"config key 'cluster.pack': 64 cells need .* pack: 10 fits"):
        stacked.check_fits(64, 1_199_882, 64, torch.device("cpu"), available=10 * need + 1)
    stacked.check_fits(10, 1_199_882, 64, torch.device("cpu"), available=10 * need + 1)  # fits: no error


def test_a_resnet18_study_may_pack_but_its_networks_are_never_stacked(tmp_path):
    """ResNet18's packs are separate networks (normsweep.training.members.separate); the stacked
    (vmap) pack would share BatchNorm across members, so it refuses them."""
    folder = tmp_path / "images"
    (folder / "train").mkdir(parents=True)
    config = {
        "cluster": {"pack": 4},
        "models": {"resnet18": {"data": str(folder), "references": {"none": "none"}}},
    }
    assert validate_config(config)["cluster"]["pack"] == 4
    with pytest.raises(PackError, match="cannot be stacked"):
        stacked.check_stackable("resnet18")


class Killed(Exception):
    pass


def test_a_stacked_pack_killed_inside_an_epoch_resumes_to_the_uninterrupted_numbers(mnist, tmp_path):
    """One engine, so the stacked pack saves inside an epoch too (checkpoint_minutes)
    and resumes at the batch where it stopped, to the numbers of an uninterrupted run."""
    tr, te = mnist
    small = batches.TensorData(tr.images[:320], tr.labels[:320])  # 5 steps an epoch
    config = TrainConfig(
        epochs=2, threads=1, deterministic=True, checkpoint_minutes=0
    )  # save after every batch
    norms = [WELL_CONDITIONED[0], ([2.0], [0.2])]
    whole = train_cells([spec(m, s) for m, s in norms], small, te, config)
    checkpoint = tmp_path / "pack.pt"

    def kill(n, members, losses, steps=[]):  # noqa: B006 (counts the steps of this one run)
        steps.append(n)
        if len(steps) == 8:  # epoch 2, after its third batch (saved there)
            raise Killed

    with pytest.raises(Killed):
        train_cells([spec(m, s) for m, s in norms], small, te, config, checkpoint, on_step=kill)
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["epoch"] == 1 and saved["position"]["batch"] == 3
    steps = []
    resumed = train_cells([spec(m, s) for m, s in norms], small, te, config, checkpoint,
                          on_step=lambda n, members, losses: steps.append(n))  # fmt: skip
    assert steps == [4, 5]  # the rest of epoch 2 only
    for a, b in zip(whole, resumed, strict=True):
        assert [e.test_accuracy for e in a.epochs] == [e.test_accuracy for e in b.epochs]
        assert [e.test_loss for e in a.epochs] == [e.test_loss for e in b.epochs]
        assert [e.train_loss for e in a.epochs] == [e.train_loss for e in b.epochs]


def test_a_signalled_stacked_pack_saves_at_the_next_batch_and_resumes_to_the_same_numbers(mnist, tmp_path):
    """A pack signalled by the scheduler (SIGTERM) saves at its next batch boundary,
    stops, and its next try ends at the numbers of an uninterrupted run."""
    tr, te = mnist
    small = batches.TensorData(tr.images[:320], tr.labels[:320])  # 5 steps an epoch
    config = TrainConfig(epochs=2, threads=1, deterministic=True)  # no timed saves: the signal's only
    norms = [WELL_CONDITIONED[0], ([2.0], [0.2])]
    whole = train_cells([spec(m, s) for m, s in norms], small, te, config)
    checkpoint = tmp_path / "pack.pt"

    def signalled(n, members, losses, steps=[]):  # noqa: B006 (counts the steps of this one run)
        steps.append(n)
        if len(steps) == 7:  # epoch 2, during its second batch
            os.kill(os.getpid(), signal.SIGTERM)

    with pytest.raises(Interrupted, match="stopped by SIGTERM in epoch 2 after batch 3"):
        train_cells([spec(m, s) for m, s in norms], small, te, config, checkpoint, "p1", on_step=signalled)
    steps = []
    resumed = train_cells([spec(m, s) for m, s in norms], small, te, config, checkpoint, "p1",
                          on_step=lambda n, members, losses: steps.append(n))  # fmt: skip
    assert steps == [4, 5]
    for a, b in zip(whole, resumed, strict=True):
        assert [e.test_accuracy for e in a.epochs] == [e.test_accuracy for e in b.epochs]
        assert [e.train_loss for e in a.epochs] == [e.train_loss for e in b.epochs]
