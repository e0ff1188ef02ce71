# The data. MNIST: checked (md5) on the login node, fetched there when missing and allowed.
# An ImageFolder: listed once on the login node (a checkpoint: the listing decides the shards),
# then each shard of `image.shard_size` images prepared by its own job, on CPUs only; the record
# (files.json) and the exact statistics are summed from the shards' manifests. The listing, record
# and statistics stay under results/<study>/<model>/data/<key>/ (the key: a hash of the folder
# and image size); the shards go to the data cache (config `data_cache`), one copy per key for
# every model and study. The rules never delete or rewrite the data.


include: "inputs/data.smk"


checkpoint list_images:
    output:
        f"{RESULTS}/{{model}}/data/{{datakey}}/listing.json",
    log:
        f"{LOGS}/{{model}}/data/{{datakey}}/listing.log",
    localrule: True
    conda:
        "../../envs/train.yaml"
    params:
        data=data_params,
        # a file added, removed or renamed in the folder lists it again (see images.folder_stamp)
        folder=folder_stamp,
    script:
        "../scripts/list_images.py"


rule prepare_shard:
    input:
        key_listings,
    output:
        # in the data cache, shared by models and studies: never deleted before the job (update),
        # which locks the shard and reuses a copy whose sha256 holds (normsweep.data.cache)
        pixels=update(f"{DATA_CACHE}/{{datakey}}/{{split}}-{{shard}}-{{signature}}.npy"),
        manifest=update(f"{DATA_CACHE}/{{datakey}}/{{split}}-{{shard}}-{{signature}}.json"),
    log:
        f"{LOGS}/data/{{datakey}}/{{split}}-{{shard}}-{{signature}}.log",
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        # CPU only (no gpu resource: the SLURM profile asks for none), memory of one image
        mem_mb=PREPARE_MEM_MB,
        runtime=prepare_runtime,
    params:
        image=image_params,
    script:
        "../scripts/prepare_shard.py"


rule check_data:
    input:
        data_inputs,
    output:
        # update: the script reads the record it replaces (which shards were prepared again)
        update(f"{RESULTS}/{{model}}/data/{{datakey}}/files.json"),
    log:
        f"{LOGS}/{{model}}/data/{{datakey}}/check.log",
    localrule: True
    conda:
        "../../envs/train.yaml"
    params:
        data=data_params,
        # shards deleted from the data cache by hand: named here, so that they are prepared again
        missing=missing_shards,
        # MNIST's files as they are now (sizes, times): one replaced in place is checked again
        stamp=mnist_stamp,
        # what the record holds (2: labels, shard signatures and the data version): an older one is made again
        record=RECORD_FORMAT,
    script:
        "../scripts/check_data.py"


rule dataset_stats:
    input:
        record=f"{RESULTS}/{{model}}/data/{{datakey}}/files.json",
        shards=train_shard_manifests,
    output:
        f"{RESULTS}/{{model}}/data/{{datakey}}/stats.json",
    log:
        f"{LOGS}/{{model}}/data/{{datakey}}/stats.log",
    localrule: True
    conda:
        "../../envs/train.yaml"
    params:
        data=data_params,
    script:
        "../scripts/dataset_stats.py"
