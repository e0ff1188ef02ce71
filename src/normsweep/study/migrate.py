"""One-off migrations of a study's files: per-channel cell names written with commas by
versions before December 2026 renamed to the underscore form (``scripts/rename_channel_labels.py``).
"""

from __future__ import annotations

from pathlib import Path

from normsweep.core.cells import (
    _OLD_LABEL,
    CHANNEL_SEP,
    OLD_CHANNEL_SEP,
    PACK_CHECKPOINT,
    PACK_LOG,
    PACK_RESULT,
    Cell,
    Pack,
    logs_dir,
    results_dir,
)


def rename_old_channel_names(study: str, base: str | Path = ".") -> list[tuple[Path, Path]]:
    """Rename a study's per-channel cells from the old comma names to today's (``_``): the
    folders and files under results/ and logs/, and the labels inside its JSON and journal
    files (cell results, pack files, refinement rounds, the Optuna journal). Idempotent; returns
    the (old, new) paths it renamed."""
    import re

    from normsweep.core.results import write_text_atomic

    old = re.compile(rf'(?<=["|~/]){_OLD_LABEL}(?=["|/]|$)')

    def new_text(text: str) -> str:
        return old.sub(lambda m: m.group(0).replace(OLD_CHANNEL_SEP, CHANNEL_SEP), text)

    renamed: list[tuple[Path, Path]] = []
    for top in (Path(base) / results_dir(study), Path(base) / logs_dir(study)):
        if not top.exists():
            continue
        for path in list(top.rglob("*")):  # labels inside the files first, then the names
            if path.is_file() and (path.suffix == ".json" or path.name == "journal.log"):
                text = path.read_text()
                if (updated := new_text(text)) != text:
                    write_text_atomic(path, updated)
        for path in sorted(top.rglob("*~*,*"), key=lambda p: -len(p.parts)):  # deepest first
            name = re.sub(rf"^((?:mean|std)~){_OLD_LABEL}", lambda m: new_text(m.group(0)), path.name)
            if name != path.name:
                target = path.with_name(name)
                if target.exists():
                    raise FileExistsError(f"{target} exists already beside {path}: move one of them away")
                path.rename(target)
                renamed.append((path, target))
    renamed += _rename_packs(study, base)
    return renamed


def _rename_packs(study: str, base: str | Path) -> list[tuple[Path, Path]]:
    """A pack is named by a hash of its members' names: after their renaming, its file, log and
    checkpoint take the new name, so that its cells keep it as their maker (read_packs)."""
    import json

    from normsweep.core.results import write_json_atomic

    renamed = []
    for model_dir in sorted((Path(base) / results_dir(study)).glob("*/packs")):
        model = model_dir.parent.name
        for path in sorted(model_dir.glob("seed~*/pack~*.json")):
            record = json.loads(path.read_text())
            seed = int(record["seed"])
            pack = Pack(model, seed, tuple(Cell(model, m, s, seed) for m, s in record["members"]))
            old_id = path.stem.removeprefix("pack~")
            if old_id == pack.id:
                continue
            write_json_atomic(path, {**record, "pack": pack.id})
            for member in record.get("results", []):  # each member's result names its pack
                member_path = Path(base) / member
                if member_path.exists():
                    write_json_atomic(member_path, {**json.loads(member_path.read_text()), "pack": pack.id})
            wildcards = {"model": model, "seed": seed}
            for layout, top in ((PACK_RESULT, results_dir(study)), (PACK_LOG, logs_dir(study)),
                                (PACK_CHECKPOINT, results_dir(study))):  # fmt: skip
                before = Path(base) / top / layout.format(pack=old_id, **wildcards)
                after = Path(base) / top / layout.format(pack=pack.id, **wildcards)
                if before.exists():
                    before.rename(after)
                    renamed.append((before, after))
    return renamed
