"""The pinned conda environments reviewers get are the versions CI tests."""

import re
from importlib import metadata

import yaml

from conftest import ROOT


def pip_pins(env_file):
    spec = yaml.safe_load(env_file.read_text())
    pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d)
    return dict(line.split("==") for line in pip)


def test_every_env_pins_exact_versions_that_are_the_installed_ones():
    envs = sorted((ROOT / "envs").glob("*.yaml"))
    assert {e.stem for e in envs} == {"train", "analysis", "optuna"}
    for env in envs:
        spec = yaml.safe_load(env.read_text())
        conda = [d for d in spec["dependencies"] if isinstance(d, str)]
        assert all(re.fullmatch(r"[a-z0-9_-]+=[0-9][0-9.]*", d) for d in conda), (
            conda
        )  # python=3.11.7, pip=26.3
        pins = pip_pins(env)
        assert {"torch", "numpy"} & set(pins)
        for name, version in pins.items():
            assert metadata.version(name) == version, (
                f"{env.name}: {name}=={version}, installed {metadata.version(name)}"
            )


def test_every_rule_names_its_environment():
    rules = "\n".join(p.read_text() for p in (ROOT / "workflow/rules").glob("*.smk"))
    blocks = re.split(r"^(?:rule|checkpoint) ", rules, flags=re.M)[1:]
    scripted = [b for b in blocks if "script:" in b]  # the others only gather targets
    assert len(scripted) >= 10
    for block in scripted:
        assert re.search(r'conda:\s+"../../envs/(train|analysis|optuna)\.yaml"', block), block.split(":")[0]
