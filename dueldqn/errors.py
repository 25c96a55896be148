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


class TrainingDiverged(RuntimeError):
    """The TD loss became NaN or infinite; the run stopped without checkpointing the bad state."""


class ApexError(RuntimeError):
    """A replay shard (or the learner's link to one) failed: the Ape-X run cannot go on."""
