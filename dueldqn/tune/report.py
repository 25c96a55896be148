"""What a study leaves behind: the best config, a table of the top trials, and Optuna's plots."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from dueldqn.files import atomic_write, atomic_write_json, atomic_write_text

BEST_CONFIG = "best_config.json"
TOP_TRIALS = "top_trials.md"
PLOTS = {
    "optimization_history.png": "plot_optimization_history",
    "param_importances.png": "plot_param_importances",
    "parallel_coordinate.png": "plot_parallel_coordinate",
}


@dataclass(frozen=True)
class TuneReport:
    """The files written, the table as text, and the best trial (None while no trial has completed)."""

    best: FrozenTrial | None
    table: str
    written: list[Path]
    skipped: dict[str, str]  # plot file -> why it was not drawn


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def top_table(study: optuna.Study, top: int = 10) -> str:
    """Markdown: the ``top`` completed trials by value, with their final return, wall time and parameters."""
    trials = study.get_trials(deepcopy=False)
    counts = {state: sum(t.state == state for t in trials) for state in TrialState}
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value or 0.0, reverse=True)
    params = sorted({name for t in complete[:top] for name in t.params})
    lines = [
        f"{counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} pruned, "
        f"{counts[TrialState.FAIL]} failed trials. Value: mean greedy return over the evaluations of the trial.",
        "",
        "| trial | value | final return | wall s | " + " | ".join(params) + " |",
        "|---:|---:|---:|---:|" + "---|" * len(params),
    ]
    for t in complete[:top]:
        cells = [_value(t.params[name]) if name in t.params else "-" for name in params]
        lines.append(
            f"| {t.number} | {t.value:.1f} | {t.user_attrs.get('final_return', float('nan')):.1f} "
            f"| {t.user_attrs.get('wall_seconds', float('nan')):.1f} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


def write_plots(study: optuna.Study, out_dir: Path) -> tuple[list[Path], dict[str, str]]:
    """Optuna's matplotlib plots as PNGs; a plot the study cannot draw yet (e.g. one trial) is skipped."""
    import matplotlib

    matplotlib.use("Agg")  # off-screen; tune never opens a window
    import matplotlib.pyplot as plt
    from optuna.importance import PedAnovaImportanceEvaluator
    from optuna.visualization import matplotlib as vis

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    # Parallel coordinates draw only the trials that have every parameter asked for: leave out those
    # sampled only sometimes (alpha, beta0 without prioritized replay), or those trials would vanish.
    common = sorted(set.intersection(*(set(t.params) for t in complete))) if complete else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        evaluator = PedAnovaImportanceEvaluator()  # fANOVA, the default, needs scikit-learn
    extra: dict[str, dict[str, Any]] = {
        "plot_param_importances": {"evaluator": evaluator},
        "plot_parallel_coordinate": {"params": common},
    }
    written, skipped = [], {}
    for name, function in PLOTS.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ExperimentalWarning: the matplotlib backend is marked experimental
                ax = getattr(vis, function)(study, **extra.get(function, {}))
            figure = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            figure.set_size_inches(14, 7)
            figure.tight_layout()
            path = out_dir / name
            atomic_write(path, partial(figure.savefig, format="png", dpi=100))
            plt.close(figure)
            written.append(path)
        except (ValueError, RuntimeError, ZeroDivisionError) as err:
            skipped[name] = str(err) or type(err).__name__
    return written, skipped


def write_report(study: optuna.Study, out_dir: Path, *, top: int = 10, plots: bool = True) -> TuneReport:
    """Write ``best_config.json`` (``dueldqn train --config`` takes it), ``top_trials.md`` and the plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    best = max(complete, key=lambda t: t.value or 0.0) if complete else None
    if best is not None:
        atomic_write_json(out_dir / BEST_CONFIG, best.user_attrs["config"])
        written.append(out_dir / BEST_CONFIG)
    table = top_table(study, top)
    atomic_write_text(out_dir / TOP_TRIALS, f"# Study {study.study_name}: top trials\n\n{table}\n")
    written.append(out_dir / TOP_TRIALS)
    skipped: dict[str, str] = {}
    if plots:
        drawn, skipped = write_plots(study, out_dir)
        written += drawn
    return TuneReport(best, table, written, skipped)
