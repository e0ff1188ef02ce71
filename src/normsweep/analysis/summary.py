"""The summary as text (Markdown, one sentence per model in the study summary) and the
aggregate step that writes the tables and the summary files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from normsweep.analysis.comparisons import summarize
from normsweep.analysis.statistics import compare_cells
from normsweep.analysis.table import SPEED_METRICS, cells_table, epochs_table, kept_predictions
from normsweep.core.results import ResultError, configured, read_result, result_files


def model_sentence(model: str, s: Mapping[str, Any]) -> str:
    """One sentence on a model: its accuracy at each reference and at the best grid cell, and
    which of them differ from the baseline (the summary's test)."""
    named = [(name, c) for name, c in s.get("references", {}).items()]
    if s.get("best"):
        named.append(("the best grid cell", s["best"]))

    def accuracy(c: Mapping[str, Any]) -> str:
        return "diverged" if c["accuracy"] is None else f"{c['accuracy']:.4f}"

    def where(name: str, c: Mapping[str, Any]) -> str:
        if name == "own":
            return "its own normalization (own)"
        if name == "the best grid cell":
            return f"the best grid cell ({c['mean']}, {c['std']})"
        return f"{name} ({c['mean']}, {c['std']})" if c["mean"] not in ("none", name) else name

    text = f"{model}: " + "; ".join(f"{accuracy(c)} at {where(n, c)}" for n, c in named) + "."
    noise = s.get("noise") or {}
    if noise.get("n_compared"):
        differ = {(d["mean"], d["std"]) for d in noise["differ"]}
        names = [n for n, c in named if (c["mean"], c["std"]) in differ and n != noise["baseline"]]
        test = " and ".join(f"{t} {n}" for t, n in (noise.get("tests") or {}).items()) or "Welch"
        text += (
            f" Different from {noise['baseline']} ({test}, FDR 5%, {noise['n_differ']} of "
            f"{noise['n_compared']} cells): {', '.join(names) or 'none of these'}."
        )
    return text


def published_line(s: Mapping[str, Any]) -> str | None:
    p = s.get("published")
    if not p:
        return None
    measured = "not measured (no `own` cell)"
    if p["measured_own"] is not None:
        measured = f"{p['measured_own']:.4f} ({p['difference'] * 100:+.2f} points)"
    where = f"{p.get('n_test', 0):,} images of {p.get('num_classes', 0)} classes"
    caveat = (
        "ImageNet's val set: the published protocol"
        if p.get("comparable")
        else "not ImageNet's 50,000 val images of 1000 classes: not comparable"
    )
    return (
        f"Published ImageNet-1K top-1 of {p['source']}: {p['top1']:.4f}; measured here at its own "
        f"normalization: {measured}, on {where} ({caveat})."
    )


def study_summary_markdown(summaries: Mapping[str, Mapping[str, Any]]) -> str:
    """The study in one sentence per model (from each model's summary.json)."""
    lines = ["# normsweep study summary", ""]
    for model, s in summaries.items():
        lines.append(f"- {model_sentence(model, s)}")
        if line := published_line(s):
            lines.append(f"  {line}")
    return "\n".join(lines) + "\n"


def noise_lines(noise: Mapping[str, Any] | None) -> list[str]:
    """The summary's lines on which cells differ from the baseline, and by which tests."""
    if not noise:
        return []
    if not noise["n_compared"]:
        return [f"Seed noise: {noise['note']}."]
    tests = ", ".join(f"{t} {n}" for t, n in (noise.get("tests") or {}).items())
    untested = noise.get("n_untested")
    return [
        f"Against the baseline '{noise['baseline']}' ({noise['method']}): "
        f"{noise['n_differ']} of {noise['n_compared']} cells differ "
        + ("beyond chance" if noise["method"].startswith("McNemar") else "beyond seed noise")
        + f" (tests used: {tests})."
        + (
            f" {untested} cells could not be tested (no predictions, fewer than two seeds)."
            if untested
            else ""
        )
    ] + [
        f"- ({d['mean']}, {d['std']}): {d['diff'] * 100:+.2f} points, adjusted p = {d['p_adjusted']:.3g}"
        for d in noise["differ"]
    ]


def data_lines(s: Mapping[str, Any]) -> list[str]:
    """The summary's warning when its cells ran on more than one version of the data."""
    if not s.get("mixed_data"):
        return []
    counts = ", ".join(f"`{v or 'not recorded'}`: {n}" for v, n in sorted(s["data_versions"].items()))
    return [
        f"**Warning:** the cells of this table ran on different versions of the data ({counts}; "
        f"the data now is `{s['data_version'] or 'unknown'}`, {s['n_other_data']} results ran on "
        "another). The `data_version` column says which is which; `scripts/plan.py` lists the cells "
        "to redo on the current data.",
        "",
    ]


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """The summary for people."""
    lines = ["# normsweep summary", ""]
    for model, s in summary.items():
        lines += [f"## {model}", ""]
        if s.get("references") or s.get("best"):
            lines += [model_sentence(model, s), ""]
        if line := published_line(s):
            lines += [line, ""]
        lines.append(
            f"{s['n_results']} results in {s['n_cells']} cells ({s['n_grid_cells']} on the grid), "
            f"seeds {s['seeds']}, epochs {s['epochs']}, training images {s['n_train']}, "
            f"{s['n_diverged']} diverged."
        )
        lines.append("")
        lines += data_lines(s)
        if s.get("mixed_code"):
            lines += [
                "**Warning:** the cells of this table were made with different versions of the training "
                "code (normsweep source hash: git commits):",
                "",
            ]
            lines += [
                f"- `{code}`: {', '.join(commits) or 'no git checkout'}"
                for code, commits in s["code_versions"].items()
            ] + [""]
        if s.get("mixed_modes"):
            m = s["training_modes"]
            lines += [
                f"**Warning:** this table mixes cells trained in packs ({m['pack']} results) and cells trained "
                f"alone ({m['alone']}): the two modes round differently and early training amplifies it "
                "(measured: per-epoch accuracy up to 0.17 apart at a cell's take-off, as far as the same "
                "code on another thread count), so a difference between cells of the two modes is partly "
                "the mode. The `pack_size` column says which is which; retrain one group for a clean comparison.",
                "",
            ]
        heads = s.get("heads", {})  # cells per kind of head (normsweep.data.classes)
        if heads.get("replaced"):
            lines += [
                f"**Note:** the weights' classes could not be matched to the data set's, so their last layer "
                f"was replaced by a new random one in {heads['replaced']} cells (`head: replaced`): "
                "those cells measure a head trained from random on top of the pretrained features. Name "
                "the class folders by their ImageNet WordNet ids to score the weights' own outputs.",
                "",
            ]
        if heads.get("mapped"):
            lines += [
                f"Scored on the weights' own outputs ({heads['mapped']} cells, `head: mapped`): each "
                "class folder is the weights' output for its WordNet id.",
                "",
            ]
        if s.get("mixed_versions"):
            lines += [
                "**Warning:** the cells of this table were made with different package or code versions:",
                "",
            ]
            lines += [f"- `{json.dumps(v, sort_keys=True)}`" for v in s["versions"]] + [""]
        lines += [
            "| cell | mean | std | accuracy | sd over seeds | seeds | diverged seeds |",
            "|---|---|---|---|---|---|---|",
        ]
        rows = [("best grid cell", s.get("best")), ("worst grid cell", s.get("worst"))]
        rows += [(f"reference: {name}", ref) for name, ref in s["references"].items()]
        for label, c in rows:
            if c is None:
                continue
            sd = "" if c["accuracy_sd"] is None else f"{c['accuracy_sd']:.4f}"
            acc = "diverged" if c["accuracy"] is None else f"{c['accuracy']:.4f}"
            diverged = c.get("n_diverged", 0)
            lines.append(
                f"| {label} | {c['mean']} | {c['std']} | {acc} | {sd} | {c['n_seeds']} | {diverged} |"
            )
        lines.append("")
        if s.get("partly_diverged"):
            lines.append(
                "Not ranked, some seeds diverged: "
                + ", ".join(
                    f"({p['mean']}, {p['std']}) {p['n_diverged']} of {p['n_seeds']}"
                    for p in s["partly_diverged"]
                )
                + "."
            )
        if s.get("evaluation_only"):
            lines.append(
                "Evaluation only (epochs: 0): the networks were not trained, so there is no learning speed."
            )
        if s.get("grid_accuracy_sd_across_cells") is not None:
            lines.append(
                f"Across grid cells: mean accuracy {s['grid_accuracy_mean']:.4f}, "
                f"sd {s['grid_accuracy_sd_across_cells']:.4f}."
            )
        lines += noise_lines(s.get("noise"))
        if s.get("seed_sd_mean") is not None:
            lines.append(
                f"Across seeds of one cell: mean sd {s['seed_sd_mean']:.4f}, largest {s['seed_sd_max']:.4f}."
            )
        if s.get("speed", {}).get("answer"):
            lines += ["", "**How fast it learns.** " + s["speed"]["answer"]]
        lines.append("")
    return "\n".join(lines)


def data_versions(results: Iterable[Any], model: str, current: str) -> dict[str, Any]:
    """How many of a model's results ran on each version of its data, and how many on another
    than ``current`` (results from before versions were recorded count as neither)."""
    counts: dict[str, int] = {}
    for r in results:
        if r.model == model:
            counts[r.data_version] = counts.get(r.data_version, 0) + 1
    recorded = {v: n for v, n in counts.items() if v}
    other = sum(n for v, n in recorded.items() if current and v != current)
    return {"data_versions": counts, "data_version": current, "n_other_data": other,
            "mixed_data": len(recorded) > 1 or other > 0}  # fmt: skip


def write_tables(
    result_paths: Iterable[str | Path],
    roles: Mapping[str, Mapping[str, Mapping[str, Any]]],
    baseline: Mapping[str, str],
    out: Mapping[str, str | Path],
    convergence: Mapping[str, Mapping[str, Any]] | None = None,
    published: Mapping[str, Mapping[str, Any] | None] | None = None,
    data_version: Mapping[str, str] | None = None,
    seeds: Mapping[str, Iterable[int]] | None = None,
) -> dict[str, Any]:
    """Read the cell results and write cells/epochs tables (CSV + Parquet) and the summary
    (``data_version``: each model's data version now, which the results are checked against;
    with ``seeds``, only the configured cells' results: ``roles`` x ``seeds`` per model)."""
    results, unreadable, paths = [], [], []
    for path in result_files(result_paths):
        try:
            results.append(read_result(path))
            paths.append(path)
        except ResultError as error:
            unreadable.append((str(path), str(error)))
    if unreadable:
        listing = "\n".join(f"  {message}" for _, message in unreadable)
        raise ResultError(
            f"{len(unreadable)} cell result(s) cannot be read:\n{listing}\n"
            f"Delete them and rerun snakemake; it trains exactly these cells again:\n"
            f"  rm {' '.join(path for path, _ in unreadable)}"
        )
    if seeds is not None:
        keep = {
            i
            for model in {r.model for r in results}
            for i in configured(results, roles.get(model, {}), seeds.get(model, []))
            if results[i].model == model
        }
        results, paths = (
            [r for i, r in enumerate(results) if i in keep],
            [p for i, p in enumerate(paths) if i in keep],
        )
    cells = cells_table(results, roles, convergence)
    epochs = epochs_table(results)
    correct = kept_predictions(results, paths)
    summary = summarize(cells, baseline, convergence, correct, published)
    for model, s in summary.items():
        s.update(data_versions(results, model, (data_version or {}).get(model, "")))
    stats = pd.concat(
        [
            compare_cells(
                rows, (baseline or {}).get(str(model)), SPEED_METRICS, correct.get(str(model))
            ).assign(model=model)
            for model, rows in cells.groupby("model")
        ],
        ignore_index=True,
    )
    for name, frame in (("cells", cells), ("epochs", epochs), ("cell_stats", stats)):
        Path(out[f"{name}_csv"]).parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out[f"{name}_csv"], index=False)
        frame.to_parquet(out[f"{name}_parquet"], index=False)
    Path(out["summary_json"]).write_text(json.dumps(summary, indent=2) + "\n")
    Path(out["summary_md"]).write_text(summary_markdown(summary))
    return summary
