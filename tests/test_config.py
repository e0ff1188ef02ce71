import copy

import pytest
import yaml

from conftest import ROOT, SMALL_MNIST, snakemake
from normsweep.study.config import ConfigError, load_config, validate_config

GOOD = {
    "models": {
        "lenet": {
            "data": str(SMALL_MNIST),
            "grid": {
                "mean": {"start": -2, "stop": 3, "num": 15},
                "std": {"start": 0.02, "stop": 2, "num": 15},
            },
            "references": {"classic": {"mean": 0.1307, "std": 0.3081}, "none": "none"},
            "baseline": "classic",
        }
    }
}


def changed(path, value):
    config = copy.deepcopy(GOOD)
    node = config
    *parents, last = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return config


def test_good_config_gets_the_notebook_defaults():
    config = validate_config(copy.deepcopy(GOOD))
    training = config["models"]["lenet"]["training"]
    assert training == {
        "epochs": 30,
        "batch_size": 64,
        "test_batch_size": 1000,
        "lr": None,
        "train_subset": None,
        "test_subset": None,
        "device": "auto",
        "threads": 1,
        "checkpoint_minutes": None,
        "deterministic": False,
        "precision": "fp32",
        "channels_last": "auto",
        "cudnn_benchmark": "auto",
        "compile": False,
    }
    assert config["models"]["lenet"]["seeds"] == [1998]
    from normsweep.training.runner import train_config

    assert train_config("lenet", training).lr == 1.0  # no lr: the model's own (Adadelta)
    assert train_config("resnet18", training).lr == 0.01  # (SGD with momentum)


def test_shipped_configs_are_valid():
    for name in ("config.yaml", "full.yaml", "reproduce.yaml", "resnet.yaml"):
        load_config(ROOT / "config" / name)


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("models.lenet.training.epoch", 3, r"'models.lenet.training'.*'epoch' was unexpected"),
        (
            "models.lenet.training.epochs",
            "many",
            r"'models.lenet.training.epochs': 'many' is not of type 'integer'",
        ),
        ("models.lenet.training.lr", -1, r"'models.lenet.training.lr'"),
        ("models.lenet.seeds", [], r"'models.lenet.seeds'"),
        (
            "models.resnet99",
            {"data": "data/imagenette-tiny"},
            r"'models.resnet99': unknown architecture 'resnet99'.*closest: resnet50",
        ),
        ("models.lenet.grid.std", {"start": 0, "stop": 2, "num": 3}, r"'models.lenet.grid.std.start'.*> 0"),
        ("models.lenet.grid.std", [0.5, -1], r"'models.lenet.grid.std': every std must be > 0"),
        (
            "models.lenet.grid.mean",
            {"start": 3, "stop": -2, "num": 3},
            r"'models.lenet.grid.mean'.*below stop",
        ),
        (
            "models.lenet.baseline",
            "clasic",
            r"'models.lenet.baseline': 'clasic' is not one of the references",
        ),
        (
            "models.lenet.references.rgb",
            {"mean": [0.1, 0.2, 0.3], "std": 1},
            r"3 values, but lenet has 1 channel",
        ),
        ("models.lenet.references.zero", {"mean": 0, "std": 0}, r"'models.lenet.references.zero.std'"),
        ("models.lenet.data", "/nowhere/mnist", r"'models.lenet.data'.*download: true"),
        (
            "models.lenet.optuna",
            {"n_trials": 5, "mean": [2, -1]},
            r"'models.lenet.optuna'.*low must be below high",
        ),
        ("models.lenet.optuna", {"n_trials": 5, "std": [0, 1]}, r"'models.lenet.optuna'.*0 < low < high"),
        ("models.lenet.optuna", {"n_trials": 0}, r"'models.lenet.optuna.n_trials'"),
        ("models.lenet.optuna", {"n_trials": 5, "workers": 4}, r"'models.lenet.optuna.workers'.*use 'batch'"),
        (
            "models.lenet.optuna",
            {"n_trials": 5, "prune": True},
            r"'models.lenet.optuna.prune'.*per-epoch reports",
        ),
        (
            "models.lenet.init_study",
            {"mean": 0, "std": 1, "weight": [0, 1], "bias": [1]},
            r"init_study.weight",
        ),
    ],
)
def test_bad_values_name_their_key(path, value, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(changed(path, value))


def test_snakemake_stops_before_any_job_on_a_bad_config(tmp_path):
    bad = changed("models.lenet.training.epochs", "many")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(bad))
    run = snakemake("-n", "--configfile", str(tmp_path / "config.yaml"), cwd=ROOT)
    assert run.returncode != 0
    assert "config key 'models.lenet.training.epochs'" in run.stderr + run.stdout
    assert "train_cell" not in run.stdout


def _schema_keys(node: dict, schema: dict, prefix: str = "") -> set[str]:
    """Every key the schema allows, as dotted paths (``models.<name>`` for the model blocks)."""
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    keys = set()
    for name, child in node.get("properties", {}).items():
        keys.add(prefix + name)
        keys |= _schema_keys(child, schema, f"{prefix}{name}.")
    extra = node.get("additionalProperties")
    if isinstance(extra, dict) and "$ref" in extra and extra["$ref"].endswith("/model"):
        keys |= _schema_keys(extra, schema, f"{prefix}<name>.")
    return keys


def test_the_config_reference_is_generated_from_the_schema_and_complete():
    """docs/config.md is what scripts/dev/config_reference.py makes of the schema, and every key of
    the schema (every model key included) has a description there."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, str(ROOT / "scripts/dev/config_reference.py"), "--check"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 0, run.stderr
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    keys = _schema_keys(schema, schema)
    assert "models.<name>.optuna.per_channel" in keys and "models.<name>.training.epochs" in keys
    text = (ROOT / "docs/config.md").read_text()
    assert not [k for k in keys if f"| `{k}` |" not in text]
    assert "docs/config.md" in (ROOT / "config/README.md").read_text()
