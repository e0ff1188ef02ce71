import math
import os
import shutil
import signal
import threading

import pytest
import torch
from torchvision import transforms

from conftest import SMALL_MNIST, kill_in_epoch_2, train_one
from normsweep.core import signals
from normsweep.core.errors import Interrupted
from normsweep.core.results import STATUS_DIVERGED, STATUS_OK
from normsweep.core.spec import CellSpec, TrainConfig, resolve_normalization
from normsweep.data import batches, mnist
from normsweep.models.normalize import normalize
from normsweep.training import engine, tensorfile
from normsweep.training.members.separate import Separate


@pytest.fixture(scope="module")
def tiny():
    tr = mnist.load_mnist(SMALL_MNIST, train=True, limit=256)
    te = mnist.load_mnist(SMALL_MNIST, train=False, limit=200)
    return batches.TensorData.from_uint8(tr.images, tr.labels), batches.TensorData.from_uint8(
        te.images, te.labels
    )


@pytest.fixture(scope="module")
def whole(tiny):
    """The classic cell trained 3 epochs in one go: what every stopped and resumed run must equal."""
    tr, te = tiny
    return train_one(spec([0.1307], [0.3081]), tr, te, TrainConfig(epochs=3, threads=1, deterministic=True))


#: The classic cell killed in epoch 2 (by a time limit, say): its checkpoint, after epoch 1.
KILLED_CONFIG = TrainConfig(epochs=3, threads=1, deterministic=True)


@pytest.fixture(scope="module")
def killed(tiny, tmp_path_factory):
    """The checkpoint of the classic cell killed in epoch 2 (KILLED_CONFIG), made once: a test
    copies it and resumes the copy."""
    tr, te = tiny
    checkpoint = tmp_path_factory.mktemp("killed") / "cell.pt"
    kill_in_epoch_2(Separate, "evaluate", lambda: train_one(spec([0.1307], [0.3081], checkpoint=checkpoint),
                                                             tr, te, KILLED_CONFIG))  # fmt: skip
    return checkpoint


def spec(mean, std, seed=1998, checkpoint=None):
    return CellSpec("lenet", "mnist", "m", "s", mean, std, seed, checkpoint)


def test_normalize_equals_torchvision_per_sample_transform():
    split = mnist.load_mnist(SMALL_MNIST, train=True, limit=8)
    batch = batches.TensorData.from_uint8(split.images, split.labels).floats()
    ours = normalize(batch, [0.1307], [0.3081])
    pipeline = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    theirs = torch.stack([pipeline(img.numpy()) for img in split.images])
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_normalize_per_channel_and_identity():
    x = torch.rand(4, 3, 5, 5)
    out = normalize(x, [0.1, 0.2, 0.3], [0.5, 1.0, 2.0])
    for c, (m, s) in enumerate([(0.1, 0.5), (0.2, 1.0), (0.3, 2.0)]):
        assert torch.allclose(out[:, c], (x[:, c] - m) / s)
    assert normalize(x, None, None) is x
    with pytest.raises(ValueError, match="one per channel"):
        normalize(x, [0.1, 0.2], [1.0, 1.0])


def test_resolve_normalization_of_symbols_and_numbers():
    assert resolve_normalization("none", "none", None, None) == (None, None)
    assert resolve_normalization("dataset", "dataset", [0.13], [0.31]) == ([0.13], [0.31])
    assert resolve_normalization("0.5", "0.25", None, None) == ([0.5], [0.25])
    with pytest.raises(ValueError, match="statistics"):
        resolve_normalization("dataset", "dataset", None, None)


def test_a_cell_trains_and_records_every_epoch(tiny):
    tr, te = tiny
    result = train_one(spec([0.1307], [0.3081]), tr, te, TrainConfig(epochs=2, threads=1))
    assert result.status == STATUS_OK
    assert [e.epoch for e in result.epochs] == [1, 2]
    assert 0.3 < result.final_accuracy <= 1.0  # 256 images, 2 epochs: well above chance (0.1)
    assert result.final_accuracy == result.epochs[-1].test_accuracy
    assert all(e.train_loss > 0 and e.lr == 1.0 for e in result.epochs)
    assert result.device == "cpu" and result.versions["torch"] == torch.__version__.split("+")[0]


def test_epochs_zero_evaluates_without_training(tiny):
    tr, te = tiny
    result = train_one(spec(None, None), tr, te, TrainConfig(epochs=0, threads=1))
    assert [e.epoch for e in result.epochs] == [0]
    assert math.isnan(result.epochs[0].train_loss)
    assert result.final_accuracy < 0.35  # an untrained network


def test_a_diverged_run_is_a_result_not_a_crash(tiny):
    tr, te = tiny
    # dividing by 1e-40 turns every ink pixel into inf: the loss is NaN at once
    result = train_one(spec([0.0], [1e-40]), tr, te, TrainConfig(epochs=3, threads=1))
    assert result.status == STATUS_DIVERGED
    assert math.isnan(result.final_accuracy)
    assert len(result.epochs) == 1 and math.isnan(result.epochs[0].train_loss)


def test_same_seed_same_numbers_on_the_cpu(tiny):
    tr, te = tiny
    config = TrainConfig(epochs=1, threads=1, deterministic=True)
    a = train_one(spec([0.5], [0.25]), tr, te, config)
    b = train_one(spec([0.5], [0.25]), tr, te, config)
    assert a.final_accuracy == b.final_accuracy
    assert a.epochs[0].train_loss == b.epochs[0].train_loss


def test_resume_from_checkpoint_equals_an_uninterrupted_run(tiny, whole, tmp_path, monkeypatch, caplog):
    tr, te = tiny
    config = TrainConfig(epochs=3, threads=1, deterministic=True)

    checkpoint = tmp_path / "cell.pt"
    kill_in_epoch_2(Separate, "evaluate", lambda: train_one(spec([0.1307], [0.3081], checkpoint=checkpoint),
                                                             tr, te, config))  # fmt: skip
    assert checkpoint.exists()

    trained = []
    real_epoch = engine._train_epoch
    monkeypatch.setattr(engine, "_train_epoch", lambda *a, **k: trained.append(1) or real_epoch(*a, **k))
    with caplog.at_level("INFO", logger="normsweep.training.engine"):
        resumed = train_one(spec([0.1307], [0.3081], checkpoint=checkpoint), tr, te, config)
    assert f"resumed from {checkpoint} after epoch 1" in caplog.text  # the line the workflow tests read
    assert len(trained) == 2  # epochs 2 and 3 only: epoch 1 came from the checkpoint
    assert [e.test_accuracy for e in resumed.epochs] == [e.test_accuracy for e in whole.epochs]
    assert [e.train_loss for e in resumed.epochs] == [e.train_loss for e in whole.epochs]


@pytest.mark.parametrize(
    "when, at",
    [
        ("batch", "in epoch 2 after batch 3"),  # inside an epoch: saved at the next batch boundary
        ("last batch", "in epoch 2 after batch 4"),  # the epoch's last: its training is kept
        ("evaluation", "after epoch 2"),  # while testing: saved once the epoch is recorded
    ],
)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_a_signalled_run_saves_at_the_next_batch_boundary_and_resumes_there(
    tiny, whole, tmp_path, monkeypatch, caplog, when, at, signum
):
    """SIGTERM (a time limit, a preemption) or the signal asked for with
    ``sbatch --signal``: the run saves where it is, stops (Interrupted), and the next try ends
    at the numbers of an uninterrupted run, to the last bit."""
    assert threading.current_thread() is threading.main_thread()  # signals reach the main thread only
    tr, te = tiny  # 256 images: 4 batches an epoch
    config = TrainConfig(epochs=3, threads=1, deterministic=True)
    checkpoint = tmp_path / "cell.pt"
    steps: list[int] = []

    def signalled(n, members, losses):
        steps.append(n)
        if (when == "batch" and len(steps) == 6) or (when == "last batch" and len(steps) == 7):
            os.kill(os.getpid(), signum)

    if when == "evaluation":
        real, calls = Separate.evaluate, []

        def evaluate(self, *args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                os.kill(os.getpid(), signum)
            return real(self, *args, **kwargs)

        monkeypatch.setattr(Separate, "evaluate", evaluate)
    with caplog.at_level("INFO", logger="normsweep"), pytest.raises(Interrupted, match=at) as stopped:
        train_one(spec([0.1307], [0.3081], checkpoint=checkpoint), tr, te, config, on_step=signalled)
    assert f"{signal.Signals(signum).name} received: saving at the next batch boundary" in caplog.text
    assert f"stopped by {signal.Signals(signum).name} {at}" in str(stopped.value)
    monkeypatch.undo()
    assert signal.getsignal(signum) is signal.SIG_DFL  # the handler went with the run
    caplog.clear()
    steps.clear()
    with caplog.at_level("INFO", logger="normsweep.training.engine"):
        resumed = train_one(spec([0.1307], [0.3081], checkpoint=checkpoint), tr, te, config,
                            on_step=lambda n, m, loss: steps.append(n))  # fmt: skip
    inside = {"batch": ", 3 batches into epoch 2", "last batch": ", 4 batches into epoch 2", "evaluation": ""}
    after = 2 if when == "evaluation" else 1
    assert f"resumed from {checkpoint} after epoch {after}{inside[when]}\n" in caplog.text + "\n"
    assert steps == {"batch": [4, 1, 2, 3, 4], "last batch": [1, 2, 3, 4], "evaluation": [1, 2, 3, 4]}[when]
    assert (
        f"earlier stop 1: {signal.Signals(signum).name} {at}, " in caplog.text
    )  # the story survives its log
    assert [e.test_accuracy for e in resumed.epochs] == [e.test_accuracy for e in whole.epochs]
    assert [e.train_loss for e in resumed.epochs] == [e.train_loss for e in whole.epochs]
    assert [e.test_loss for e in resumed.epochs] == [e.test_loss for e in whole.epochs]


def test_a_stop_signal_while_the_job_starts_stops_the_run_at_its_first_batch(tiny, whole, tmp_path, caplog):
    """A preemption's one SIGTERM (SIGKILL follows GraceTime later) while the job starts, before
    the engine's run (a rule script notes stop signals from its first line): before, the run
    trained on until the SIGKILL and lost that work; now it saves after its first batch and
    stops, and the next try (a new process) ends at the numbers of an uninterrupted run."""
    tr, te = tiny
    config = TrainConfig(epochs=3, threads=1, deterministic=True)
    checkpoint = tmp_path / "cell.pt"
    handlers = {sig: signal.getsignal(sig) for sig in signals.STOP_SIGNALS}
    noted = list(signals.RECEIVED)
    try:
        signals.note_stop_signals()
        os.kill(os.getpid(), signal.SIGTERM)  # while starting
        assert signals.PENDING == ["SIGTERM"]
        with caplog.at_level("INFO", logger="normsweep"), pytest.raises(Interrupted) as stopped:
            train_one(spec([0.1307], [0.3081], checkpoint=checkpoint), tr, te, config)
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        signals.RECEIVED[:] = noted  # as in the next try's new process
        signals.PENDING.clear()
    assert "SIGTERM received while starting: saving at the next batch boundary" in caplog.text
    assert "stopped by SIGTERM in epoch 1 after batch 1" in str(stopped.value)
    assert not stopped.value.progressed  # one batch: a job stopped at every start is not requeued forever
    resumed = train_one(spec([0.1307], [0.3081], checkpoint=checkpoint), tr, te, config)
    assert [e.test_accuracy for e in resumed.epochs] == [e.test_accuracy for e in whole.epochs]
    assert [e.train_loss for e in resumed.epochs] == [e.train_loss for e in whole.epochs]


def test_a_run_without_a_checkpoint_keeps_the_default_signal_handlers(tiny):
    """Nothing to save: the run leaves SIGTERM to its default (the job ends)."""
    tr, te = tiny
    seen = []
    train_one(spec([0.1307], [0.3081]), tr, te, TrainConfig(epochs=1, threads=1),
              on_step=lambda n, m, loss: seen.append(signal.getsignal(signal.SIGTERM)))  # fmt: skip
    assert seen and all(h is signal.SIG_DFL for h in seen)


@pytest.mark.parametrize(
    "change, what",
    [
        ({"config": {"lr": 0.5}}, "training.lr"),
        ({"config": {"batch_size": 32}}, "training.batch_size"),
        ({"config": {"epochs": 4}}, "training.epochs"),
        ({"spec": {"data_key": "another folder"}}, "data"),
        ({"spec": {"data_version": "0123456789abcdef"}}, "data_version"),  # the folder changed in place
        ({"spec": {"init_weight": 2.0}}, "init"),
        ({"code": "0123456789ab"}, "code"),  # another version of the training code (a move, an edit)
    ],
)
def test_a_checkpoint_made_by_other_settings_starts_afresh(
    tiny, killed, tmp_path, monkeypatch, caplog, change, what
):
    """After a kill, a changed setting reruns the cell, which resumed the old
    checkpoint (old optimizer state and rate) and recorded the new settings."""
    tr, te = tiny
    config = KILLED_CONFIG
    checkpoint = shutil.copy(killed, tmp_path / "cell.pt")
    new_config = TrainConfig(**{**vars(config), **change.get("config", {})})
    new_spec = spec([0.1307], [0.3081], checkpoint=checkpoint)
    for key, value in change.get("spec", {}).items():
        setattr(new_spec, key, value)
    if "code" in change:
        monkeypatch.setattr("normsweep.core.results.source_hash", lambda modules: change["code"])
    trained = []
    real_epoch = engine._train_epoch
    monkeypatch.setattr(engine, "_train_epoch", lambda *a, **k: trained.append(1) or real_epoch(*a, **k))
    with caplog.at_level("WARNING", logger="normsweep.training.checkpoint"):
        result = train_one(new_spec, tr, te, new_config)
    assert f"other settings ({what} changed): starting afresh" in caplog.text
    assert len(trained) == new_config.epochs and [e.epoch for e in result.epochs] == list(
        range(1, new_config.epochs + 1)
    )


def test_threads_and_device_are_how_a_cell_runs_its_checkpoint_still_resumes(
    tiny, killed, tmp_path, monkeypatch
):
    tr, te = tiny
    config = KILLED_CONFIG
    checkpoint = shutil.copy(killed, tmp_path / "cell.pt")
    trained = []
    real_epoch = engine._train_epoch
    monkeypatch.setattr(engine, "_train_epoch", lambda *a, **k: trained.append(1) or real_epoch(*a, **k))
    other_run = TrainConfig(**{**vars(config), "threads": 2, "device": "cpu"})
    train_one(spec([0.1307], [0.3081], checkpoint=checkpoint), tr, te, other_run)
    assert len(trained) == 2  # resumed after epoch 1
    torch.set_num_threads(1)


class _RunsCodeWhenUnpickled:
    """A pickle payload that would create a file if it were ever unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_checkpoint_holding_an_object_is_refused_and_named(tiny, tmp_path):
    tr, te = tiny
    marker = tmp_path / "code-ran"
    checkpoint = tmp_path / "cells" / "seed~1998.pt"
    checkpoint.parent.mkdir()
    torch.save({"epoch": 1, "payload": _RunsCodeWhenUnpickled(marker)}, checkpoint)
    config = TrainConfig(epochs=2, threads=1)
    with pytest.raises(tensorfile.UnsafeFileError, match=r"seed~1998\.pt: refused to load this checkpoint"):
        train_one(spec([0.1307], [0.3081], checkpoint=checkpoint), tr, te, config)
    assert not marker.exists()  # nothing in the file ran


@pytest.mark.parametrize("cut", [0, 100])  # empty (renamed before its data reached the disk), cut short
def test_a_damaged_checkpoint_is_set_aside_and_the_cell_starts_afresh(tiny, tmp_path, cut, caplog):
    """A checkpoint a crashed node left empty or cut short is renamed aside (never
    deleted), named in a warning, and the cell trains from its start to the same numbers."""
    tr, te = tiny
    config = TrainConfig(epochs=1, threads=1)
    checkpoint = tmp_path / "cells" / "seed~1998.pt"
    checkpoint.parent.mkdir()
    torch.save({"epoch": 1, "weights": torch.zeros(1000)}, checkpoint)
    checkpoint.write_bytes(checkpoint.read_bytes()[:cut])
    with caplog.at_level("WARNING", logger="normsweep"):
        result = train_one(spec([0.1307], [0.3081], checkpoint=checkpoint), tr, te, config)
    aside = list(checkpoint.parent.glob("seed~1998.pt.damaged-*"))
    assert len(aside) == 1 and aside[0].stat().st_size == cut
    assert f"{checkpoint} is damaged" in caplog.text and aside[0].name in caplog.text
    fresh = train_one(spec([0.1307], [0.3081]), tr, te, config)
    assert result.status == STATUS_OK and result.final_accuracy == fresh.final_accuracy


def test_checkpoint_minutes_zero_is_every_batch_in_code_and_refused_in_a_config():
    """The engine's ``checkpoint_minutes=0`` saves after every batch (tests
    use it); a config cannot say 0 (the schema names the key), and a job gets whole seconds
    (its resource), at least 1."""
    from normsweep.study.config import ConfigError, validate_config
    from normsweep.study.resources import checkpoint_seconds
    from normsweep.training.checkpoint import Every

    every = Every(0)
    assert all(every.due() for _ in range(5)) and not Every(None).due()
    assert not Every(1).due()  # a minute has not passed
    with pytest.raises(ConfigError, match=r"'models.lenet.training.checkpoint_minutes': 0 is less than"):
        validate_config(
            {"models": {"lenet": {"data": str(SMALL_MNIST), "training": {"checkpoint_minutes": 0}}}}
        )
    assert checkpoint_seconds({"checkpoint_minutes": 0.001}) == 1 and checkpoint_seconds({}) == 0


def test_precision_is_a_setting_recorded_in_every_result(tiny):
    """Training.precision. bf16 is an autocast (the CPU's too, so the same path is
    tested here): the forward pass in bfloat16, the loss and the optimizer state in float32;
    every kind of members runs under it, and the result records it. fp32, the default, is the
    numbers of before (scripts/dev/compare_commits.py)."""
    from normsweep.training.runner import train_cells

    tr, te = tiny
    fp32 = train_one(spec([0.1307], [0.3081]), tr, te, TrainConfig(epochs=1, threads=1, deterministic=True))
    config = TrainConfig(epochs=1, threads=1, deterministic=True, precision="bf16")
    bf16 = train_one(spec([0.1307], [0.3081]), tr, te, config)
    assert (fp32.precision, bf16.precision) == ("fp32", "bf16")
    assert bf16.epochs[0].train_loss != fp32.epochs[0].train_loss  # it did compute in bfloat16
    assert bf16.epochs[0].train_loss == pytest.approx(fp32.epochs[0].train_loss, rel=0.05)
    assert bf16.final_accuracy > 0.3  # 256 images, one epoch: well above chance, as in float32
    stacked = train_cells([spec([0.1307], [0.3081]), spec(None, None)], tr, te, config)
    assert stacked[0].epochs[0].train_loss == pytest.approx(bf16.epochs[0].train_loss, rel=0.05)
    evaluated = train_cells(
        [spec([0.1307], [0.3081]), spec(None, None)], tr, te, TrainConfig(epochs=0, precision="bf16")
    )
    assert all(r.precision == "bf16" and 0 <= r.final_accuracy <= 1 for r in evaluated)
    with pytest.raises(ValueError, match="precision 'fp16'"):
        train_one(spec([0.1307], [0.3081]), tr, te, TrainConfig(epochs=1, precision="fp16"))


def test_the_default_precision_stays_out_of_a_cells_params():
    """Finished studies keep their params when precision arrives (no rerun); another precision
    is another computation, so it reruns the cells."""
    from normsweep.study.config import validate_config
    from normsweep.study.resources import cell_params

    block = validate_config({"models": {"lenet": {"data": str(SMALL_MNIST), "references": {"none": "none"}}}})
    block = block["models"]["lenet"]
    assert block["training"]["precision"] == "fp32" and "precision" not in cell_params(block)["training"]
    block["training"]["precision"] = "bf16"
    assert cell_params(block)["training"]["precision"] == "bf16"


def test_a_finished_run_is_saved_so_a_lost_result_is_written_again_without_training(
    tiny, tmp_path, monkeypatch
):
    """A job signalled after its result was written is reported failed by its
    snakemake, which deletes the result; the finished checkpoint stays (drop_after_result) and
    the next try writes the same result from it with no training step."""
    from normsweep.training import checkpoint as ckpt

    tr, te = tiny
    config = TrainConfig(epochs=2, threads=1, deterministic=True)
    path = tmp_path / "cell.pt"
    first = train_one(spec([0.1307], [0.3081], checkpoint=path), tr, te, config)
    assert torch.load(path, weights_only=True)["epoch"] == 2
    kept = []
    monkeypatch.setattr(ckpt, "KEPT", kept)
    monkeypatch.setattr(ckpt, "RECEIVED", ["SIGTERM"])  # the job got a signal: it counts as failed
    ckpt.drop_after_result(path)
    assert path.exists() and kept == [str(path)]  # its SLURM job requeues itself on it (_setup.py)
    steps = []
    again = train_one(spec([0.1307], [0.3081], checkpoint=path), tr, te, config,
                      on_step=lambda n, m, loss: steps.append(n))  # fmt: skip
    assert steps == [] and [e.test_accuracy for e in again.epochs] == [e.test_accuracy for e in first.epochs]
    monkeypatch.setattr(ckpt, "RECEIVED", [])
    ckpt.drop_after_result(path)  # no signal: the job succeeds, its checkpoint goes
    assert not path.exists() and kept == [str(path)]
