"""Packs of networks that cannot be stacked (ResNet18: BatchNorm), and resuming inside an
epoch: an evaluation pack equals the one-cell evaluations, a fine-tuning pack of separate
networks equals the one-cell runs, and a run killed mid-epoch resumes to the numbers of an
uninterrupted one (deterministic CPU, a few steps on the tiny folder)."""

import pytest
import torch

from conftest import ROOT, train_one
from normsweep.core.spec import CellSpec, TrainConfig
from normsweep.data import prepare
from normsweep.models.normalize import normalize
from normsweep.training.engine import initial_model
from normsweep.training.members.eval_only import member_logits
from normsweep.training.runner import load_splits, train_cells

TINY = ROOT / "data" / "imagenette-tiny"
NORMS = [(None, None), ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]), ([0.5], [0.25])]


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prepared")
    prepare.prepare_folder(TINY, folder, 40, 32, shard_size=16)
    train_d, test_d, classes = load_splits(
        "resnet18", {"data": str(TINY), "training": {"train_subset": 12}}, folder
    )
    return train_d, test_d, classes


def specs(classes, checkpoint=None, norms=NORMS):
    return [
        CellSpec("resnet18", "imagefolder", f"m{i}", f"s{i}", m, s, 1998, checkpoint, num_classes=classes)
        for i, (m, s) in enumerate(norms)
    ]


CONFIG = dict(batch_size=4, test_batch_size=5, lr=0.01, threads=1, deterministic=True, device="cpu")


def test_an_evaluation_pack_equals_the_one_cell_evaluations(splits):
    tr, te, classes = splits
    config = TrainConfig(epochs=0, **CONFIG)
    packed = train_cells(specs(classes), tr, te, config, pack_id="p")
    for spec, result in zip(specs(classes), packed, strict=True):
        alone = train_one(spec, tr, te, config)
        assert result.final_accuracy == alone.final_accuracy and result.n_train == alone.n_train == 12
        assert result.epochs[0].test_loss == pytest.approx(alone.epochs[0].test_loss, rel=1e-6)
    torch.manual_seed(1998)
    net = initial_model(specs(classes)[0], torch.device("cpu")).eval()
    x, _ = next(te.batches(None, 5))
    together = member_logits(net, x, specs(classes), eval_images=15)  # three normalizations, one pass
    with torch.inference_mode():
        for spec, logits in zip(specs(classes), together, strict=True):
            assert torch.allclose(logits, net(normalize(x, spec.mean, spec.std)), rtol=0, atol=1e-5)


def test_a_pack_of_separate_networks_equals_the_one_cell_runs(splits):
    tr, te, classes = splits
    config = TrainConfig(epochs=2, **CONFIG)  # 3 steps an epoch
    packed = train_cells(specs(classes), tr, te, config, pack_id="p")
    for spec, result in zip(specs(classes), packed, strict=True):
        alone = train_one(spec, tr, te, config)
        assert [e.test_accuracy for e in result.epochs] == [e.test_accuracy for e in alone.epochs]
        for ours, theirs in zip(result.epochs, alone.epochs, strict=True):
            assert ours.train_loss == pytest.approx(theirs.train_loss, rel=1e-6)
            assert ours.test_loss == pytest.approx(theirs.test_loss, rel=1e-6)
    assert len({round(r.epochs[-1].train_loss, 6) for r in packed}) == 3  # the members differ


class Killed(Exception):
    pass


def kill_at(step):
    def on_step(n, *_):
        if n == step:
            raise Killed

    return on_step


def test_a_cell_and_a_pack_killed_inside_an_epoch_resume_to_the_uninterrupted_numbers(splits, tmp_path):
    tr, te, classes = splits
    config = TrainConfig(epochs=2, checkpoint_minutes=0, **CONFIG)  # save after every batch
    spec = specs(classes, tmp_path / "cell.pt")[1]
    whole = train_one(specs(classes)[1], tr, te, config)
    steps = []
    with pytest.raises(Killed):  # in epoch 2, after its second batch: saved there
        train_one(spec, tr, te, config, on_step=lambda *_: steps.append(1) or kill_at(5)(len(steps)))
    saved = torch.load(spec.checkpoint, weights_only=True)
    assert saved["epoch"] == 1 and saved["position"]["batch"] == 2
    resumed = train_one(spec, tr, te, config)
    assert [e.test_accuracy for e in resumed.epochs] == [e.test_accuracy for e in whole.epochs]
    assert resumed.epochs[-1].train_loss == pytest.approx(whole.epochs[-1].train_loss, rel=1e-6)
    assert resumed.epochs[-1].test_loss == pytest.approx(whole.epochs[-1].test_loss, rel=1e-6)

    pack_file = tmp_path / "pack.pt"
    whole = train_cells(specs(classes), tr, te, config)
    with pytest.raises(Killed):  # in epoch 1, after its second batch
        train_cells(specs(classes), tr, te, config, pack_file, on_step=kill_at(2))
    assert torch.load(pack_file, weights_only=True)["position"]["batch"] == 2
    resumed = train_cells(specs(classes), tr, te, config, pack_file)
    for ours, theirs in zip(resumed, whole, strict=True):
        assert [e.test_accuracy for e in ours.epochs] == [e.test_accuracy for e in theirs.epochs]
        assert ours.epochs[-1].train_loss == pytest.approx(theirs.epochs[-1].train_loss, rel=1e-6)
