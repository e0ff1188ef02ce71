# Checks before anything runs (called from the Snakefile's onstart), and one
# speed-up of Snakemake's own check of the rules' scripts.


def check_scripts_once_per_rule():
    """Snakemake 9.27 checks a rule's script once per job (5 s of a 15 s dry run at 10,000
    cells); no script path here has wildcards, so once per rule gives the same answer. Left
    alone where Snakemake's internals differ."""
    try:
        from snakemake.dag import ScriptProcessor
    except ImportError:
        return
    original = getattr(ScriptProcessor, "process_job", None)
    if original is None or getattr(original, "once_per_rule", False):
        return

    def process_job(self, job):
        checked = self.__dict__.setdefault("scripts_checked", set())
        key = (job.rule.name, self.script_type)
        if key not in checked:
            original(self, job)
            checked.add(key)

    process_job.once_per_rule = True
    ScriptProcessor.process_job = process_job


check_scripts_once_per_rule()


check_scripts_once_per_rule()


def check_cluster_request():
    """Before the first job is submitted to SLURM: does every job's request fit the partition
    (CPUs, memory, GPUs and their type per node, MaxTime)? Otherwise stop with the config key
    to change, instead of SLURM refusing each job at submission. Silent where SLURM does not
    answer (scontrol missing or the daemons down)."""
    plugin = workflow.executor_plugin
    if plugin is None or plugin.name.removeprefix("snakemake-executor-plugin-") != "slurm":
        return
    from normsweep.cluster.partition import check_request, read_partition

    partition = read_partition(config["cluster"]["partition"])
    problems = check_request(config, partition) if partition is not None else []
    if problems:
        raise WorkflowError(
            f"the study's jobs do not fit partition {partition.name}:\n  " + "\n  ".join(problems)
        )


def check_weights_files():
    """Before the first job: every model's pretrained weights are where they are read from
    (torch's cache for a torchvision name, else the file) and have their sha256; otherwise stop
    naming the file to put where. A dry run plans without them."""
    problems = []
    for m in MODELS:
        block = config["models"][m]
        if block.get("weights"):
            try:
                arch = ns_catalog.arch_of(m, block)
                ns_catalog.check_weights(arch, block["weights"], block.get("weights_sha256"))
            except ns_catalog.ArchError as error:
                problems.append(f"config key 'models.{m}.weights': {error}")
    if problems:
        raise WorkflowError("\n".join(problems))
