"""The study status as people read it: the text ``scripts/status.py`` prints and the progress
heatmap it draws (finished cells coloured by accuracy, running, failed and pending ones marked).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from normsweep.core import cells as cellnames
from normsweep.monitoring.status import CellState


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown (no epoch measured yet)"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60:02d} min" if hours else f"{rest // 60} min {rest % 60:02d} s"


def format_status(status: Mapping[str, Any], rerun: str) -> str:
    """The status for people; ``rerun`` is the snakemake command line that reruns a cell."""
    lines = [f"study {status['study']} at {status['time']}"]
    if not status["started"]:
        lines.append(f"nothing has run yet: start it with `{rerun}`")
        return "\n".join(lines)
    for model, m in status["models"].items():
        queue = f"{m['queued']} queued, " if status.get("scheduler") else ""
        lost = f"{m['lost']} lost, " if m["lost"] else ""
        refined = (
            f" (with {m['trial_cells']} refinement trial cells and {m['retrain_cells']} retrained seeds)"
            if m["trial_cells"] or m["retrain_cells"]
            else ""
        )
        lines.append(
            f"{model}: {m['done']} done, {queue}{m['running']} running, {m['failed']} failed, {lost}"
            f"{m['diverged']} diverged, {m['pending']} pending, of {m['cells']} cells{refined}"
        )
        if m["seconds_per_epoch"] is not None:
            lines.append(
                f"  time left: about {_duration(m['seconds_left'])} ({m['epochs_left']} epochs at "
                f"{m['seconds_per_epoch']:.1f} s, {max(m['running_at_once'], 1)} cells at once; an estimate)"
            )
        for r in m["running_cells"][:20]:
            acc = "" if r["accuracy"] is None else f", test accuracy {r['accuracy']:.4f}"
            job = f" [job {r['job_id']} {r['job']}]" if r["job"] else ""
            trial = " (refinement trial)" if r["origin"] == "trial" else ""
            lines.append(f"  running {r['cell']}{trial}: epoch {r['epoch']}/{r['of']} done{acc}{job}")
        if len(m["running_cells"]) > 20:
            lines.append(f"  ... and {len(m['running_cells']) - 20} more running")
        for q in m["queued_cells"][:10]:
            lines.append(f"  queued {q['cell']}: job {q['job_id']} {q['job']}")
        if len(m["queued_cells"]) > 10:
            lines.append(f"  ... and {len(m['queued_cells']) - 10} more queued")
        for lost in m["lost_cells"]:
            lines.append(
                f"  LOST {lost['cell']}: its files say running but no job holds it (log {lost['log']})"
            )
            lines.append(f"    rerun: {rerun} {lost['cell']}")
        if m.get("optuna"):
            o = m["optuna"]
            lines.append(
                f"  refinement: {o['rounds_told']} of {o['rounds']} rounds told, {o['trials_asked']} of "
                f"{o['n_trials']} trials asked, {o['finished_trials'] or 0} finished trials in the study"
            )
        for f in m["failed_cells"]:
            slurm = f", SLURM job {f['job_id']} {f['job']}, its log {f['slurm_log']}" if f["job"] else ""
            lines.append(f"  FAILED {f['cell']} (log {f['log']}{slurm}):")
            lines += [f"    | {line}" for line in f["tail"][-6:]]
            lines.append(f"    rerun: {rerun} {f['cell']}")
    return "\n".join(lines)


STATE_STYLE = {  # marker, colour, label
    "running": ("o", "tab:blue", "running"),
    "queued": ("P", "tab:cyan", "queued"),
    "failed": ("X", "tab:red", "failed"),
    "lost": ("X", "tab:orange", "lost"),
    "pending": (".", "0.6", "pending"),
    "diverged": ("s", "0.3", "diverged"),
}


def progress_figure(status: Mapping[str, Any], path: str | Path) -> None:
    """One panel per model: the finished grid cells' accuracy (seed mean) over mean x std, the
    running, failed, pending and diverged cells marked; reference cells listed below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(status["models"])
    fig, axes = plt.subplots(1, len(models), figsize=(8 * len(models), 6.4), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        states = [s for s in status["models"][model]["_states"] if _numeric(s.cell)]
        points: dict[tuple[float, float], list[CellState]] = {}
        for s in states:
            points.setdefault(_numeric(s.cell), []).append(s)
        done = {k: [s.accuracy for s in v if s.state == "done"] for k, v in points.items()}
        done = {k: sum(v) / len(v) for k, v in done.items() if v}
        if done:
            xs, ys = zip(*done, strict=True)
            shown = ax.scatter(xs, ys, c=list(done.values()), cmap="viridis", s=220, marker="s", zorder=2)
            fig.colorbar(shown, ax=ax, label="final test accuracy (mean over seeds)")
        for state, (marker, colour, label) in STATE_STYLE.items():
            where = [k for k, v in points.items() if any(s.state == state for s in v)]
            if where:
                xs, ys = zip(*where, strict=True)
                ax.scatter(xs, ys, marker=marker, c=colour, s=90 if state != "pending" else 40, zorder=3,
                           label=f"{label} ({len(where)})")  # fmt: skip
        m = status["models"][model]
        others = [s for s in status["models"][model]["_states"] if not _numeric(s.cell)]
        if others:
            listed = ", ".join(
                f"{s.cell.mean}: {s.state}" + (f" {s.accuracy:.4f}" if s.state == "done" else "")
                for s in others[:6]
            )
            ax.text(0.0, -0.13, f"cells off the axes: {listed}", transform=ax.transAxes, fontsize=8, va="top")
        ax.set_yscale("log")
        ax.set_xlabel("mean subtracted from the input (pixel units, input in [0, 1])")
        ax.set_ylabel("std the input is divided by (log scale)")
        ax.set_title(
            f"{model}: {m['done']} done, {m['running']} running, {m['failed']} failed, {m['pending']} pending"
            f" of {m['cells']} cells"
        )
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"study {status['study']}: progress at {status['time']}")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _numeric(cell: cellnames.Cell) -> tuple[float, float] | None:
    """A cell's (mean, std) when both are one number (grid cells, numeric references)."""
    try:
        mean, std = float(cell.mean), float(cell.std)
    except ValueError:
        return None
    return (mean, std) if std > 0 else None
