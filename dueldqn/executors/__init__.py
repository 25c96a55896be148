"""Executors: who runs the loop over the components.

- :mod:`dueldqn.executors.local`: the lecture's algorithm box in one process (``run_local``);
- :mod:`dueldqn.executors.session`: the run directory, resume, log and checkpoint cadence,
  signals and divergence, shared by every executor;
- :mod:`dueldqn.executors.apex`: Ape-X on Ray (``--executor ray``): the learner's loop in the driver,
  with :mod:`~dueldqn.executors.env_runner` and :mod:`~dueldqn.executors.replay_shard` (Ray-free) as
  actors through :mod:`~dueldqn.executors.ray_apex`, the only module that imports Ray.

Who builds what, today: for a local run :func:`dueldqn.training.train` builds every component
(envs, network, learner, replay, actor) and hands them to ``run_local``. Ape-X builds its own:
:func:`~dueldqn.executors.apex.train_apex` builds the learner's network and ``run_apex`` the
learner; each :class:`~dueldqn.executors.env_runner.EnvRunner` builds its envs, network copy and
actor from ``(config, index)`` in its own process, and each replay shard its replay.
"""
