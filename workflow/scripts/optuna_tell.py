"""Rule optuna_tell (local): tell the study the accuracies of this round's trial cells; a trial
told before is left as it is (none counts twice)."""

import json
from pathlib import Path

import _setup
from normsweep.core.results import read_result, result_files, write_json_atomic
from normsweep.study import refine

log = _setup.start_logging(snakemake.log)
opt = snakemake.params.optuna
asked = json.loads(Path(snakemake.input.asked).read_text())
accuracy = {}
for path in result_files(snakemake.input.cells):
    result = read_result(path)
    accuracy[refine.cell_key(result.mean_label, result.std_label, result.seed)] = result.final_accuracy
study = refine.open_study(opt["journal"], opt["study_name"], opt["sampler"], opt["seed"])
told = refine.tell_round(study, asked["trials"], accuracy)
finished = refine.finished(study)
log.info("round %d: %s; %d finished trials in the study", asked["round"], told, finished)
write_json_atomic(snakemake.output[0], {"round": asked["round"], **told, "finished": finished})
