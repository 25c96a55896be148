"""Atari 100k reference scores: the 26 games' random and human scores, and DER's, DrQ(eps)'s and SPR's runs.

The data are rliable's Atari 100k score files (Agarwal et al. 2021), shipped in ``dueldqn/data/atari100k``
byte for byte as two public mirrors hold them; ``sources.json`` there names each file's repository,
commit, path and git blob id. Each agent has 100 runs per game, each run's score the mean raw score of its
100 evaluation games after 100k agent steps. DER is Dopamine's re-implementation; DrQ(eps) is DrQ with
DER's epsilons, the recipe of the ``atari100k`` preset.

The human-normalised score is ``HNS = (score - random) / (human - random)``.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

import numpy as np

GAMES = (
    "Alien",
    "Amidar",
    "Assault",
    "Asterix",
    "BankHeist",
    "BattleZone",
    "Boxing",
    "Breakout",
    "ChopperCommand",
    "CrazyClimber",
    "DemonAttack",
    "Freeway",
    "Frostbite",
    "Gopher",
    "Hero",
    "Jamesbond",
    "Kangaroo",
    "Krull",
    "KungFuMaster",
    "MsPacman",
    "Pong",
    "PrivateEye",
    "Qbert",
    "RoadRunner",
    "Seaquest",
    "UpNDown",
)
AGENTS = ("DER", "DrQ(eps)", "SPR")
FILES = {
    "DER": "DER.json",
    "DrQ(eps)": "DrQ_eps.json",
    "SPR": "SPR.json",
    "random": "RANDOM.json",
    "human": "HUMAN.json",
}


@functools.cache
def _table(name: str) -> dict[str, tuple[float, ...]]:
    """One data file: game -> its scores (100 runs of an agent, or the one random or human score)."""
    text = (resources.files("dueldqn") / "data" / "atari100k" / FILES[name]).read_text()
    return {game: tuple(float(x) for x in runs) for game, runs in json.loads(text).items()}


def _check_game(game: str) -> None:
    if game not in GAMES:
        raise ValueError(f"{game!r} is not an Atari 100k game; expected one of {list(GAMES)}")


def random_score(game: str) -> float:
    """The random agent's score of ``game`` (Dopamine's ``normalization_utils.py``)."""
    _check_game(game)
    return _table("random")[game][0]


def human_score(game: str) -> float:
    """The human score of ``game`` (Dopamine's ``normalization_utils.py``)."""
    _check_game(game)
    return _table("human")[game][0]


def reference_runs(agent: str, game: str) -> np.ndarray:
    """``agent``'s 100 run scores on ``game`` (each the mean of 100 evaluation games), in the file's order."""
    if agent not in AGENTS:
        raise ValueError(f"no reference runs for {agent!r}; expected one of {list(AGENTS)}")
    _check_game(game)
    return np.array(_table(agent)[game])


def human_normalized(game: str, score: float | np.ndarray) -> np.ndarray:
    """``(score - random) / (human - random)`` with ``game``'s random and human scores (any shape)."""
    random = random_score(game)
    return (np.asarray(score, dtype=np.float64) - random) / (human_score(game) - random)
