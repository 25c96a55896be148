"""Training statistics: ``metrics.csv`` and TensorBoard event files in the run directory.

``metrics.csv`` holds two kinds of rows, told apart by ``kind``:

- ``episode``: one per finished episode: ``step, episode, return, length``;
- ``train``: one per log interval: ``step, loss`` (mean MSE/Huber TD loss over the interval),
  ``epsilon``, ``steps_per_second``, ``threads`` (torch's thread count at the row: see
  :mod:`dueldqn.threads`; runs written before it have no such column and keep none);
- ``eval``: one per evaluation during training (``eval_every``): ``step``, ``episode`` (the
  episodes played), ``return`` and ``length`` (their means).

The same scalars go to TensorBoard (``charts/episodic_return``, ``losses/td_loss``, ...).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

COLUMNS = ("kind", "step", "episode", "return", "length", "loss", "epsilon", "steps_per_second", "threads")
METRICS_CSV = "metrics.csv"


class RunLogger:
    """Appends rows to ``metrics.csv`` and scalars to TensorBoard.

    Args:
        run_dir: the run directory.
        tensorboard: also write TensorBoard event files (``run_dir/tb``).
        resume_step: when resuming, the step of the checkpoint: TensorBoard events after it are
            purged so that the continued run has no duplicated points.
    """

    def __init__(self, run_dir: Path, *, tensorboard: bool = True, resume_step: int | None = None) -> None:
        self.path = Path(run_dir) / METRICS_CSV
        new = not self.path.exists()
        self.columns = COLUMNS if new else self._header()  # a resumed older run keeps its own columns
        self._file = self.path.open("a", newline="")
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(COLUMNS)
        self._tb: Any = None
        if tensorboard:  # imported here: reading metrics.csv back (dueldqn plot) loads no torch
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=resume_step)

    def _header(self) -> tuple[str, ...]:
        with self.path.open(newline="") as f:
            return tuple(next(csv.reader(f), COLUMNS))

    def _row(self, cells: dict[str, Any]) -> None:
        self._csv.writerow([cells.get(name, "") for name in self.columns])

    def episode(self, step: int, episode: int, episode_return: float, length: int) -> None:
        """Record one finished episode."""
        self._row(
            {"kind": "episode", "step": step, "episode": episode, "return": f"{episode_return:.6g}", "length": length}
        )
        if self._tb is not None:
            self._tb.add_scalar("charts/episodic_return", episode_return, step)
            self._tb.add_scalar("charts/episodic_length", length, step)

    def evaluation(self, step: int, episodes: int, mean_return: float, mean_length: float) -> None:
        """Record one evaluation during training (the policy's mean over ``episodes`` episodes)."""
        self._row(
            {
                "kind": "eval",
                "step": step,
                "episode": episodes,
                "return": f"{mean_return:.6g}",
                "length": f"{mean_length:.6g}",
            }
        )
        self._file.flush()
        if self._tb is not None:
            self._tb.add_scalar("eval/mean_return", mean_return, step)
            self._tb.add_scalar("eval/mean_length", mean_length, step)

    def train(
        self, step: int, loss: float, epsilon: float, steps_per_second: float, threads: int | None = None
    ) -> None:
        """Record one log interval of training statistics (``loss`` is NaN before learning starts)."""
        loss_cell = "" if math.isnan(loss) else f"{loss:.6g}"
        self._row(
            {
                "kind": "train",
                "step": step,
                "loss": loss_cell,
                "epsilon": f"{epsilon:.6g}",
                "steps_per_second": f"{steps_per_second:.1f}",
                "threads": "" if threads is None else threads,
            }
        )
        self._file.flush()  # once per interval: `tail -f metrics.csv` and read_metrics see the run as it goes
        if self._tb is not None:
            if not math.isnan(loss):
                self._tb.add_scalar("losses/td_loss", loss, step)
            self._tb.add_scalar("charts/epsilon", epsilon, step)
            self._tb.add_scalar("charts/steps_per_second", steps_per_second, step)
            if threads is not None:
                self._tb.add_scalar("charts/torch_threads", threads, step)

    def flush(self) -> int:
        """Write everything out; returns the size of ``metrics.csv`` in bytes (a resume point)."""
        self._file.flush()
        if self._tb is not None:
            self._tb.flush()
        return self._file.tell()

    def state_dict(self) -> dict[str, int]:
        """Where ``metrics.csv`` ends now: a resume truncates it back to this point."""
        return {"metrics_bytes": self.flush()}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Drop the rows written after :meth:`state_dict` was taken (a resumed run logs them again)."""
        self._file.close()
        with self.path.open("r+b") as f:
            f.truncate(state["metrics_bytes"])
        self._file = self.path.open("a", newline="")
        self._csv = csv.writer(self._file)

    def close(self) -> None:
        """Flush and close the files."""
        self.flush()
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(run_dir: Path) -> dict[str, list[dict[str, float]]]:
    """Rows of ``metrics.csv`` by kind, with numeric cells as floats (empty cells left out)."""
    path = Path(run_dir) / METRICS_CSV
    if not path.exists():
        raise ValueError(f"{run_dir} has no {METRICS_CSV}; expected a run directory written by 'dueldqn train'")
    rows: dict[str, list[dict[str, float]]] = {"episode": [], "train": []}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            kind = row.pop("kind")
            rows.setdefault(kind, []).append({k: float(v) for k, v in row.items() if v not in ("", None)})
    return rows
