"""Hyperparameter search (``dueldqn tune``): Optuna's TPE sampler over a config space, with pruning.

Needs the ``tune`` extra (``pip install "dueldqn[tune]"``); nothing else in dueldqn imports it.

- :mod:`dueldqn.tune.space`: the default search space per algorithm family, and space files;
- :mod:`dueldqn.tune.study`: trials as ordinary ``train()`` runs paused for greedy evaluations;
- :mod:`dueldqn.tune.storage`: SQLite, SQLAlchemy URLs, the journal file for ``--jobs``, dead workers;
- :mod:`dueldqn.tune.report`: the best config, a table of the top trials and Optuna's plots.
"""
