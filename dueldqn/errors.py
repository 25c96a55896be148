"""The exceptions a run raises to its caller, in a module that imports nothing heavy.

The command line catches them (each has its own exit status) without importing the training
code, so that ``dueldqn plot`` and ``dueldqn --help`` load no torch; the session and the Ape-X
executor raise them.
"""

from __future__ import annotations

import signal
from pathlib import Path


class TrainingInterrupted(Exception):
    """Training stopped on SIGINT or SIGTERM after writing a checkpoint it can resume from."""

    def __init__(self, run_dir: Path, step: int, signum: int) -> None:
        self.run_dir, self.step, self.signum = run_dir, step, signum
        super().__init__(
            f"interrupted by {signal.Signals(signum).name} at step {step}; a checkpoint was written. "
            f"Resume with: dueldqn train --resume {run_dir}"
        )


class EvaluationInterrupted(TrainingInterrupted):
    """SIGINT or SIGTERM during a run's final evaluation: training is done and its last checkpoint kept.

    A resume finds the loop finished and plays the final evaluation again, on the same seeded games, so
    nothing is lost but the evaluation's time. It is a :class:`TrainingInterrupted`, so callers that stop and
    resume runs (the command line, tuning, the campaign) treat it as one.
    """

    def __init__(self, run_dir: Path, step: int, signum: int) -> None:
        super().__init__(run_dir, step, signum)
        self.args = (
            f"interrupted by {signal.Signals(signum).name} in the final evaluation, after step {step}; training "
            f"is done and checkpointed. Resume with: dueldqn train --resume {run_dir} (it plays the same "
            "evaluation games again)",
        )


class TrainingDiverged(RuntimeError):
    """The TD loss became NaN or infinite; the run stopped without checkpointing the bad state."""


class ApexError(RuntimeError):
    """A replay shard (or the learner's link to one) failed: the Ape-X run cannot go on."""
