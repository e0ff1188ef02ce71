"""Rule fold_check: for every (mean, std) cell of the study, fold the normalization into the
model's first convolution (its first nn.Conv2d; padded with the mean where it pads with zeros)
and measure how far the folded network's output on raw test images is from the original
network's output on normalized ones."""

from pathlib import Path

import torch

import _setup
from normsweep.core.results import write_json_atomic
from normsweep.core.spec import resolve_normalization
from normsweep.data.mnist import DatasetStats
from normsweep.models.build import build_model
from normsweep.models.catalog import arch_of, kwargs_of
from normsweep.models.fold import check_fold, first_conv
from normsweep.training.runner import load_splits

log = _setup.start_logging(snakemake.log)
model_name = snakemake.wildcards.model
stats = DatasetStats.from_json(snakemake.input.stats)
_, test, num_classes = load_splits(model_name, snakemake.params.cell, Path(snakemake.input.stats).parent)
x, _ = next(test.batches(None, 500))  # the first 500 test images, in [0, 1]
torch.manual_seed(0)
cell = snakemake.params.cell
net = build_model(
    arch_of(model_name, cell), num_classes, arch_kwargs=kwargs_of(cell)
).eval()  # random weights
first, _ = first_conv(net)
rows = []
with torch.inference_mode():
    for mean_label, std_label in snakemake.params.cells:
        mean, std = resolve_normalization(mean_label, std_label, stats.mean, stats.std)
        if mean is None:
            continue
        diff, scale = check_fold(net, x, mean, std)
        rows.append({"mean": mean_label, "std": std_label, "max_abs_diff": diff, "max_abs_output": scale})
        log.info(
            "(%s, %s): max |folded - normalized| = %.3g (outputs up to %.3g)",
            mean_label,
            std_label,
            diff,
            scale,
        )
write_json_atomic(
    snakemake.output[0], {"model": model_name, "first_conv": first, "images": int(x.shape[0]), "cells": rows}
)
