"""Executors: who runs the loop over the components.

- :mod:`dueldqn.executors.local`: the lecture's algorithm box in one process (``run_local``);
- :mod:`dueldqn.executors.session`: the run directory, resume, log and checkpoint cadence,
  signals and divergence, shared by every executor;
- :mod:`dueldqn.executors.apex`: Ape-X on Ray (``--executor ray``): the learner's loop in the driver,
  with :mod:`~dueldqn.executors.env_runner` and :mod:`~dueldqn.executors.replay_shard` (Ray-free) as
  actors through :mod:`~dueldqn.executors.ray_apex`, the only module that imports Ray.

An executor builds nothing itself: :func:`dueldqn.training.train` builds the components from the
config and hands them over. A distributed executor reuses the same components in other processes.
"""
