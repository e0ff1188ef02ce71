"""The study's request against a SLURM partition, on scontrol's own output format."""

from conftest import SMALL_MNIST
from normsweep.cluster.partition import check_request, parse_gres, parse_partition, parse_time
from normsweep.study.config import validate_config

PARTITION = (
    "PartitionName=gpu AllowGroups=ALL Default=YES MaxTime=2-00:00:00 Nodes=g[01-02] State=UP TotalCPUs=64\n"
)
NODES = (
    "NodeName=g01 Arch=x86_64 CPUTot=32 Gres=gpu:a100:4(S:0-1) RealMemory=256000 Partitions=gpu State=IDLE\n"
    "NodeName=g02 Arch=x86_64 CPUTot=32 Gres=gpu:a100:4 RealMemory=256000 Partitions=gpu,debug State=MIXED\n"
    "NodeName=c01 Arch=x86_64 CPUTot=128 Gres=(null) RealMemory=512000 Partitions=cpu State=IDLE\n"
)


def study(**cluster):
    return validate_config(
        {
            "study": "c",
            "cluster": cluster,
            "models": {"lenet": {"data": str(SMALL_MNIST), "grid": {"mean": [0.0], "std": [1.0]}}},
        }
    )


def test_scontrol_output_is_read():
    assert parse_time("UNLIMITED") is None and parse_time("2-00:00:00") == 2880
    assert parse_time("12:30:00") == 750 and parse_time("45") == 45
    assert parse_gres("gpu:a100:4(S:0-1),gpu:v100:2") == {"a100": 4, "v100": 2}
    assert parse_gres("gpu:2") == {"": 2} and parse_gres("(null)") == {}
    # a socket list with a comma was split inside its parentheses (a ValueError)
    assert parse_gres("gpu:a100:4(S:0,2)") == {"a100": 4}
    assert parse_gres("gpu:a100:4(S:0,2),gpu:v100:2(S:1)") == {"a100": 4, "v100": 2}
    part = parse_partition(PARTITION, NODES)
    assert part.name == "gpu" and part.max_time_minutes == 2880
    assert [n["name"] for n in part.nodes] == ["g01", "g02"]  # c01 is another partition's
    assert part.nodes[0] == {"name": "g01", "cpus": 32, "memory_mb": 256000, "gpus": {"a100": 4}}


def test_a_request_that_fits_has_no_problem():
    assert (
        check_request(
            study(cpus_per_gpu=8, gpu_model="a100", mem_mb=16000), parse_partition(PARTITION, NODES)
        )
        == []
    )


def test_each_misfit_names_its_key_and_a_value_that_fits():
    part = parse_partition(PARTITION, NODES)
    problems = check_request(study(cpus_per_gpu=64, gpu_model="h100", mem_mb=300000), part)
    assert any(
        p.startswith("config key 'cluster.cpus_per_gpu': 64") and p.endswith("use 32") for p in problems
    )
    assert any(p.startswith("config key 'cluster.mem_mb': 300000") and "256000" in p for p in problems)
    assert any(p.startswith("config key 'cluster.gpu_model': h100") and "a100" in p for p in problems)
    five = check_request(study(gpus_per_cell=5, cpus_per_gpu=1), part)
    assert five == [
        "config key 'cluster.gpus_per_cell': 5 but the nodes of partition gpu have 4 GPUs per node"
    ]


def test_a_job_over_the_partitions_max_time_is_named():
    cfg = study(seconds_per_epoch=36000)  # 30 epochs of 10 hours: 7,505 minutes
    (problem,) = check_request(cfg, parse_partition(PARTITION, NODES))
    assert "'models.lenet.training.epochs'" in problem and "MaxTime of 2880 min" in problem
    assert "\n" not in problem  # one line
