"""Learning curves: episode returns and TD loss against env steps, like the lecture's stats plot."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # drawn off-screen without pyplot, whose import costs half a second

from dueldqn.files import CONFIG_FILE, atomic_write
from dueldqn.logger import read_metrics


def moving_average(values_T: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over up to ``window`` values: ``out[t] = mean(values[max(0, t-window+1) : t+1])``."""
    if len(values_T) == 0:
        return values_T
    csum = np.cumsum(np.insert(np.asarray(values_T, dtype=float), 0, 0.0))
    t = np.arange(1, len(values_T) + 1)
    lo = np.maximum(t - window, 0)
    return (csum[t] - csum[lo]) / (t - lo)


def _label(run_dir: Path) -> str:
    try:
        config = json.loads((run_dir / CONFIG_FILE).read_text())
        dueling = "" if config.get("dueling", True) else " no-dueling"
        return f"{config['env_id']} {config['algo']}{dueling} s{config['seed']}"
    except (OSError, ValueError, KeyError):
        return run_dir.name


def plot_runs(run_dirs: Sequence[Path], out: Path, *, window: int = 20) -> Path:
    """Overlay the learning curves of ``run_dirs`` (returns on top, TD loss below) into ``out`` (PNG)."""
    fig = Figure(figsize=(8, 7))
    ax_ret, ax_loss = fig.subplots(2, 1, sharex=True)
    for run_dir in map(Path, run_dirs):
        rows = read_metrics(run_dir)
        label = _label(run_dir)
        episodes, train = rows["episode"], [r for r in rows["train"] if "loss" in r]
        if episodes:
            steps = np.array([r["step"] for r in episodes])
            returns = np.array([r["return"] for r in episodes])
            (line,) = ax_ret.plot(steps, moving_average(returns, window), label=label)
            ax_ret.plot(steps, returns, color=line.get_color(), alpha=0.15, linewidth=0.8)
            if rows.get("eval"):  # evaluations during training (--eval-every): their mean returns as markers
                ax_ret.plot(
                    [r["step"] for r in rows["eval"]],
                    [r["return"] for r in rows["eval"]],
                    "o",
                    color=line.get_color(),
                    markersize=4,
                    label=f"{label} (evaluations)",
                )
        if train:
            ax_loss.plot([r["step"] for r in train], [r["loss"] for r in train], label=label)
    ax_ret.set_ylabel(f"episode return (mean of {window})")
    ax_ret.set_title("Returns")
    ax_ret.legend(loc="best", fontsize="small")
    ax_loss.set_ylabel("TD loss")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("env steps")
    ax_loss.set_title("TD loss")
    fig.tight_layout()
    out = Path(out)
    atomic_write(out, lambda f: fig.savefig(f, format="png", dpi=100))
    return out


def plot_run(run_dir: Path, out: Path) -> Path:
    """The learning curve of one run."""
    return plot_runs([run_dir], out)
