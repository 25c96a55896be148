"""Executors: who runs the loop over the components.

- :mod:`dueldqn.executors.local`: the lecture's algorithm box in one process (``run_local``);
- :mod:`dueldqn.executors.session`: the run directory, resume, log and checkpoint cadence,
  signals and divergence, shared by every executor.

An executor builds nothing itself: :func:`dueldqn.training.train` builds the components from the
config and hands them over. A distributed executor reuses the same components in other processes.
"""
