"""When the target network follows the online one: one rule for both executors.

The local loop checks after every vector step (``num_envs`` env steps); Ape-X's driver after each
turn of its loop (the chunks that finished in it). Both ask the same question, "did the steps since
the last check cross a multiple of ``every``?" (:func:`crossed`), so a setting means the same thing
whichever executor runs it. The session's checkpoints follow the same rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dueldqn.config import Config

if TYPE_CHECKING:
    from dueldqn.learner import Learner


def crossed(steps: int, taken: int, every: int) -> bool:
    """Whether the last ``taken`` env steps (ending at ``steps``) crossed a multiple of ``every``."""
    return steps // every != (steps - taken) // every


class TargetSync:
    """``theta_targ <- theta`` every ``k`` episodes, every ``N`` env steps, or Polyak-averaged after each update.

    The loop tells it what happened; it syncs the learner's target network when the config's rule says so.
    """

    def __init__(self, config: Config, learner: Learner) -> None:
        self.rule, self.every, self.tau = config.target_sync, config.target_sync_every, config.tau
        self.learner = learner

    def after_episode(self, episodes: int) -> None:
        """One more episode ended (``episodes`` in all)."""
        if self.rule == "episodes" and episodes % self.every == 0:
            self.learner.sync_target()

    def after_update(self) -> None:
        """One gradient step was taken."""
        if self.rule == "polyak":
            self.learner.sync_target(self.tau)

    def after_steps(self, steps: int, taken: int) -> None:
        """``taken`` more env steps were taken (``steps`` in all)."""
        if self.rule == "steps" and crossed(steps, taken, self.every):
            self.learner.sync_target()
