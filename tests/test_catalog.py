"""Any model on the grid: architectures by name, the user's own class, timm; what a
network needs derived from it; weights from torch's cache, never downloaded; the weights' own
preprocessing as the `own` reference; McNemar's test for evaluation cells."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys

import numpy as np
import pytest
import torch
from scipy import stats
from torchvision import models as tv_models

from conftest import ROOT, SMALL_CNN
from normsweep.analysis import statistics
from normsweep.models import published
from normsweep.models.build import build_model
from normsweep.models.fold import check_fold, first_conv
from normsweep.models.info import ModelInfo, model_info
from normsweep.study.config import ConfigError, validate_config

TINY = str(ROOT / "data" / "imagenette-tiny")
HAVE_TIMM = importlib.util.find_spec("timm") is not None
needs_timm = pytest.mark.skipif(
    not HAVE_TIMM and os.environ.get("NORMSWEEP_REQUIRE_TIMM") != "1",
    reason="timm is optional: bash scripts/setup_env.sh --timm",
)


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "mylab_nets.py").write_text(SMALL_CNN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "mylab_nets"
    sys.modules.pop("mylab_nets", None)


def image_config(**block) -> dict:
    return {"models": {"m": {"data": TINY, "references": {"none": "none"}, **block}}}


def test_what_a_network_needs_is_derived_from_it(user_module):
    info = model_info("mobilenet_v3_small")
    assert (info.dataset, info.channels, info.pack, info.first_conv) == (
        "imagefolder",
        3,
        "separate",
        "features.0.0",
    )
    assert model_info("lenet") == ModelInfo("mnist", 1, "stacked", "conv1")
    mine = model_info(f"{user_module}:SmallCNN", {"width": 4})
    assert (mine.dataset, mine.channels, mine.pack, mine.first_conv) == ("mnist", 1, "separate", "body.0")
    # the fold check and the init study find the first convolution whatever its name
    net = build_model("mobilenet_v3_small", 5).eval()
    assert first_conv(net)[0] == "net.features.0.0"
    diff, scale = check_fold(net, torch.rand(2, 3, 32, 32), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    assert diff < 1e-4 * max(scale, 1.0)


def test_unknown_names_are_config_errors_naming_close_ones(user_module):
    with pytest.raises(
        ConfigError,
        match=r"'models.m.arch': unknown architecture 'mobilenet_v3_smal'.*closest: mobilenet_v3_small",
    ):
        validate_config(image_config(arch="mobilenet_v3_smal"))
    with pytest.raises(ConfigError, match=r"'models.m.arch': .*has no class 'SmallCnn'; closest: SmallCNN"):
        validate_config(image_config(arch=f"{user_module}:SmallCnn"))
    with pytest.raises(ConfigError, match=r"'models.m.arch': cannot import 'nosuch'"):
        validate_config(image_config(arch="nosuch:Net"))
    with pytest.raises(
        ConfigError,
        match=r"'models.m.weights': .*no weights 'IMAGENET1K_V3'; closest: IMAGENET1K_V2, IMAGENET1K_V1",
    ):
        validate_config(image_config(arch="resnet50", weights="IMAGENET1K_V3"))
    with pytest.raises(ConfigError, match=r"'models.lenet.weights': LeNet has no pretrained weights"):
        validate_config({"models": {"lenet": {"data": str(ROOT / "data/mnist-small"), "weights": "x.pth",
                                              "references": {"none": "none"}}}})  # fmt: skip


def test_the_weights_own_preprocessing_is_the_default_and_own_the_baseline():
    config = validate_config(
        image_config(arch="resnet50", weights="IMAGENET1K_V2", references={"half": {"mean": 0.5, "std": 0.5}})
    )
    block = config["models"]["m"]
    transforms = tv_models.ResNet50_Weights.IMAGENET1K_V2.transforms()
    assert (
        (block["image"]["resize"], block["image"]["crop"])
        == (transforms.resize_size[0], transforms.crop_size[0])
        == (232, 224)
    )
    assert "interpolation" not in block["image"]  # bilinear: the default, left out of the data key
    assert block["references"]["own"] == {"mean": list(transforms.mean), "std": list(transforms.std)}
    assert block["baseline"] == "own" and list(block["references"]) == ["own", "half"]
    own = published.preprocessing("resnet50", "IMAGENET1K_V2")
    assert own.published_top1 == pytest.approx(0.80858) and own.source.endswith(
        "ResNet50_Weights.IMAGENET1K_V2"
    )
    bicubic = validate_config(image_config(arch="efficientnet_b0", weights="DEFAULT"))["models"]["m"]
    assert bicubic["image"]["interpolation"] == "bicubic" and bicubic["image"]["resize"] == 256
    # what the config gives wins; another baseline stays
    given = validate_config(image_config(arch="resnet50", weights="IMAGENET1K_V2", image={"resize": 40, "crop": 32},
                                         baseline="none"))["models"]["m"]  # fmt: skip
    assert (given["image"]["resize"], given["image"]["crop"], given["baseline"]) == (40, 32, "none")
    # no named weights: no own values
    assert "own" not in validate_config(image_config(arch="resnet50"))["models"]["m"]["references"]


def test_weights_by_name_come_from_torchs_cache_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    with pytest.raises(ValueError, match=r"put https://download.pytorch.org/models/mobilenet_v3_small-047dcff4.pth .* at "
                       + str(cache / "mobilenet_v3_small-047dcff4.pth")):  # fmt: skip
        build_model("mobilenet_v3_small", 10, "IMAGENET1K_V1")
    cache.mkdir(parents=True)
    torch.manual_seed(3)
    state = tv_models.get_model("mobilenet_v3_small").state_dict()
    fake = cache / "mobilenet_v3_small-047dcff4.pth"
    torch.save(state, fake)
    # not the published file: its sha256 does not start with the file name's 047dcff4
    with pytest.raises(ValueError, match="the file name's hash"):
        build_model("mobilenet_v3_small", 10, "IMAGENET1K_V1")
    digest = hashlib.sha256(fake.read_bytes()).hexdigest()
    net = build_model("mobilenet_v3_small", 10, "IMAGENET1K_V1", weights_sha256=digest[:12])
    assert torch.equal(net.net.features[0][0].weight, state["features.0.0.weight"])
    assert net.net.classifier[-1].out_features == 10  # the head replaced for 10 classes
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_mcnemar_on_hand_made_predictions():
    base = np.array([1, 1, 1, 1, 0, 0, 1, 0, 1, 1], bool)
    other = np.array([1, 0, 0, 1, 0, 1, 1, 0, 0, 1], bool)
    only_base, only_other, p = statistics.mcnemar(base, other)
    assert (only_base, only_other) == (3, 1)
    assert p == pytest.approx(stats.binomtest(1, 4, 0.5).pvalue) == pytest.approx(0.625)
    assert statistics.mcnemar(base, base) == (0, 0, 1.0)
    ten = np.ones(10, bool)
    assert statistics.mcnemar(~ten, ten)[2] == pytest.approx(2 * 0.5**10)  # 10 of 10 discordant one way
    # two distinct seeds: their exact p-values merged as twice their mean (valid under any dependence)
    first, second = ten & (np.arange(10) > 2), ten & (np.arange(10) < 7)
    merged = statistics.seeds_mcnemar({1: ten, 2: ten}, {1: first, 2: second})
    assert merged == pytest.approx(
        min(1.0, statistics.mcnemar(ten, first)[2] + statistics.mcnemar(ten, second)[2])
    )
    with pytest.raises(ValueError, match="same images"):
        statistics.mcnemar(base, base[:5])


@needs_timm
def test_a_timm_model_brings_its_own_normalization(tmp_path):
    config = validate_config(
        image_config(
            arch="timm:test_vit.r160_in1k", arch_kwargs={"img_size": 32}, weights=str(tmp_path / "w.pth")
        )
    )
    block = config["models"]["m"]
    assert block["references"]["own"] == {"mean": 0.5, "std": 0.5}  # equal channels: the cell of `half`
    assert block["baseline"] == "own"
    # without weights the network is untrained: no `own` reference, no `own` baseline
    bare = validate_config(image_config(arch="timm:test_vit.r160_in1k", arch_kwargs={"img_size": 32}))[
        "models"
    ]["m"]
    assert "own" not in bare["references"] and bare.get("baseline") != "own"
    assert bare["image"]["crop"] == 160  # the architecture's input size is still the default
    assert (block["image"]["crop"], block["image"]["resize"], block["image"]["interpolation"]) == (
        160,
        168,
        "bicubic",
    )
    info = model_info("timm:test_vit.r160_in1k", {"img_size": 32})
    assert (info.channels, info.first_conv) == (3, "patch_embed.proj")
    net = build_model("timm:test_vit.r160_in1k", 7, arch_kwargs={"img_size": 32})
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 7)
    # weights from a local file, loaded by timm itself (pretrained_cfg_overlay), never downloaded
    import timm

    torch.manual_seed(5)
    saved = timm.create_model("test_vit.r160_in1k", pretrained=False, img_size=32)
    torch.save(saved.state_dict(), tmp_path / "test_vit.pth")
    digest = hashlib.sha256((tmp_path / "test_vit.pth").read_bytes()).hexdigest()
    loaded = build_model(
        "timm:test_vit.r160_in1k", 7, str(tmp_path / "test_vit.pth"), digest, {"img_size": 32}
    )
    assert torch.equal(loaded.net.patch_embed.proj.weight, saved.patch_embed.proj.weight)
    assert loaded.net.head.out_features == 7  # the head made anew for 7 classes
    with pytest.raises(ConfigError, match=r"unknown timm model 'test_vitt.r160_in1k'.*closest: test_vit"):
        validate_config(image_config(arch="timm:test_vitt.r160_in1k"))


def test_identical_seeds_are_one_piece_of_evidence():
    """Pretrained weights and no training make every seed the same network; summing
    their discordant counts turned b=45, c=60 (p 0.17 with one seed) into p 0.045 with two
    identical seeds. Identical seeds now count once: the same p as one seed."""
    base = np.array([True] * 45 + [False] * 60 + [True] * 100)
    other = np.array([False] * 45 + [True] * 60 + [True] * 100)
    one = statistics.seeds_mcnemar({1998: base}, {1998: other})
    assert one == pytest.approx(stats.binomtest(60, 105, 0.5).pvalue) and 0.16 < one < 0.18
    assert statistics.seeds_mcnemar({1998: base, 1999: base}, {1998: other, 1999: other}) == one


def test_each_comparison_uses_the_test_its_data_allows():
    """One cell that kept predictions switched the whole model to McNemar, and the
    cells without predictions got p = NaN and vanished from n_compared. Now each comparison
    uses McNemar where both cells kept predictions, Welch over seeds where not, and the
    summary counts both."""
    import pandas as pd

    from normsweep.analysis.comparisons import noise_summary

    rng = np.random.default_rng(0)
    rows = pd.DataFrame(
        [
            {"mean_label": m, "std_label": "1", "seed": seed, "reference": "base" if m == "0" else "",
             "final_accuracy": acc + 0.001 * seed, "status": "ok"}
            for m, acc in (("0", 0.9), ("1", 0.5), ("2", 0.89))
            for seed in (1, 2, 3)
        ]
    )  # fmt: skip
    correct = {
        (m, "1", seed): rng.random(200) < acc for m, acc in (("0", 0.9), ("1", 0.5)) for seed in (1, 2, 3)
    }
    stats_ = statistics.compare_cells(rows, "base", correct=correct)
    tests = dict(zip(stats_["mean_label"], stats_["test"], strict=True))
    assert tests == {"0": "", "1": "McNemar", "2": "Welch"}
    summary = noise_summary(stats_, "base")
    assert summary["n_compared"] == 2 and summary["tests"] == {"McNemar": 1, "Welch": 1}
    assert summary["method"] == statistics.MIXED


def stand_in(cache, arch: str, weights: str, state: dict) -> str:
    """``state`` saved under the file name torch's cache gives ``arch``'s ``weights``; its sha256."""
    entry = tv_models.get_model_weights(arch)[weights]
    path = cache / entry.url.rsplit("/", 1)[-1]
    torch.save(state, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_named_weights_are_built_by_torchvisions_own_builder(tmp_path, monkeypatch):
    """The network was built with weights=None and the file loaded by hand, skipping
    what torchvision's builders do for specific weights: DenseNet's old key names (strict
    loading crashed), GoogLeNet's and Inception v3's transform_input=True (False here: every
    accuracy silently wrong), the SWAG ViTs' image size (a size mismatch). One model of each
    family, from stand-in files in a fake $TORCH_HOME, nothing downloaded; GoogLeNet and
    Inception v3 also train (their auxiliary outputs while training)."""
    import re

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.manual_seed(0)
    # DenseNet: the published file has the old key names (norm.1, conv.2, ...), made before
    # BatchNorm counted its batches
    new = tv_models.densenet121().state_dict()
    old = {
        re.sub(r"(denselayer\d+\.(?:norm|relu|conv))(1|2)\.", r"\1.\2.", k): v
        for k, v in new.items()
        if not k.endswith("num_batches_tracked")
    }
    assert old != new
    net = build_model(
        "densenet121", 10, "IMAGENET1K_V1", stand_in(cache, "densenet121", "IMAGENET1K_V1", old)
    )
    key = "features.denseblock1.denselayer1.conv1.weight"
    assert torch.equal(net.net.state_dict()[key], new[key])
    # GoogLeNet: transform_input as its weights expect, the auxiliary heads dropped
    state = tv_models.googlenet(aux_logits=True, init_weights=False).state_dict()
    net = build_model("googlenet", 3, "IMAGENET1K_V1", stand_in(cache, "googlenet", "IMAGENET1K_V1", state))
    assert net.net.transform_input is True and net.net.aux1 is None
    net.train()
    assert net(torch.rand(2, 3, 64, 64)).shape == (2, 3)
    # Inception v3: transform_input too, and its auxiliary classifier kept
    state = tv_models.inception_v3(init_weights=False, aux_logits=True).state_dict()
    digest = stand_in(cache, "inception_v3", "IMAGENET1K_V1", state)
    net = build_model("inception_v3", 3, "IMAGENET1K_V1", digest)
    assert net.net.transform_input is True and net.net.AuxLogits is not None
    # training with auxiliary outputs (GoogLeNetOutputs, as InceptionOutputs): the main logits
    net = build_model("googlenet", 3)  # no weights: its auxiliary heads are there
    net.train()
    out = net(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, 3) and torch.allclose(out.exp().sum(dim=1), torch.ones(2))
    # ViT SWAG end-to-end: the image size comes from the weights (384)
    state = tv_models.vit_b_16(image_size=384).state_dict()
    net = build_model(
        "vit_b_16", 3, "IMAGENET1K_SWAG_E2E_V1", stand_in(cache, "vit_b_16", "IMAGENET1K_SWAG_E2E_V1", state)
    )
    assert net.net.image_size == 384
