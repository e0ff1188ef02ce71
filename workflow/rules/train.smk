# One job per (model, mean, std, seed) cell.

# what one training job asks the cluster for (constants: cheap to plan 10,000 cells)
JOB_RESOURCES = cluster_resources(config)
# A retry (profiles/slurm: retries) gets the same limit: it resumes from the cell's last
# checkpoint, so every attempt goes further than the one before.
RUNTIME = per_model({m: runtime_minutes(config, m) for m in MODELS})
# sbatch --signal: told to save before the time limit (and cluster.slurm_extra)
SBATCH_EXTRA = per_model({m: sbatch_extra(config, runtime_minutes(config, m)) for m in MODELS})

# What changes a cell's result: its data and training knobs (not the grid or the references,
# so adding grid points reruns no finished cell; not threads or device, which change how a
# cell runs, not what it is: they reach the job as its threads and the torch_device resource).
TRAINING_PARAMS = per_model({m: cell_params(config["models"][m], m) for m in MODELS})
TRAIN_THREADS = per_model({m: config["models"][m]["training"]["threads"] for m in MODELS})
TRAIN_DEVICE = per_model({m: config["models"][m]["training"]["device"] for m in MODELS})
# inside-epoch checkpoints (0: at epoch ends only), a resource like the device: changing it retrains nothing
TRAIN_CHECKPOINT_SECONDS = per_model(
    {m: ns_resources.checkpoint_seconds(config["models"][m]["training"]) for m in MODELS}
)
# How a training job runs, as its resources (every training rule has them; none retrains a
# cell): torch_device, checkpoint_seconds, and the switches torch_channels_last,
# torch_cudnn_benchmark and torch_compile (auto | true | false).
TRAIN_EXECUTION = {
    "torch_device": TRAIN_DEVICE,
    "checkpoint_seconds": TRAIN_CHECKPOINT_SECONDS,
    **{
        f"torch_{key}": per_model(
            {m: ns_resources.switch_resources(config["models"][m]["training"])[key] for m in MODELS}
        )
        for key in ns_resources.SWITCHES
    },
}


rule train_cell:
    input:
        stats=CELL_DATA_STATS,
    output:
        f"{RESULTS}/{ns_cells.CELL_RESULT}",
    log:
        f"{LOGS}/{ns_cells.CELL_LOG}",
    conda:
        "../../envs/train.yaml"
    threads: TRAIN_THREADS
    resources:
        **JOB_RESOURCES,
        # sized from the config's `cluster` block (see config/README.md); used by profiles/slurm:
        # mem_mb, gpu, gpu_model, cpus_per_gpu, slurm_partition, slurm_account
        **TRAIN_EXECUTION,
        runtime=RUNTIME,
        slurm_extra=SBATCH_EXTRA,
    params:
        cell=TRAINING_PARAMS,
    script:
        "../scripts/train_cell.py"
