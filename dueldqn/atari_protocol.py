"""The Atari protocol as numbers, and what an Atari id looks like: shared by both Atari backends.

The gymnasium backend (:mod:`dueldqn.envs.atari`), the EnvPool backend
(:mod:`dueldqn.envs.envpool_atari`) and the network that reads their frames
(:class:`dueldqn.networks.DuelDQN`) all take these numbers from here; the config asks
:func:`is_atari` which preset an env gets. The module imports nothing beyond ``__future__``, so
the command line's help and the env backends load it without torch (or gymnasium).

The numbers are the Nature DQN's (Mnih et al., 2015) and Dopamine's Atari 100k runner's: four
emulator frames per agent step, four stacked 84x84 grey frames per observation, 0 to 29 no-op
steps at the start of a game, at most 108,000 frames (30 minutes) per game, no sticky actions and
no FIRE pressed for the agent.
"""

from __future__ import annotations

FRAME_SKIP = 4  # emulator frames per agent step, the same action repeated
FRAME_STACK = 4  # frames per observation
FRAME_SIZE = 84  # each frame is FRAME_SIZE x FRAME_SIZE grey pixels
NOOP_MAX = 30  # Dopamine's max_noops: 0 to 29 no-op agent steps at the start of a game
MAX_EPISODE_FRAMES = 108_000  # 30 minutes of play at 60 frames per second
PAPER_REPEAT_ACTION_PROBABILITY = 0.0  # no sticky actions, as in Mnih et al. (2015) and Dopamine's Atari 100k
PAPER_FIRE_RESET = False  # Dopamine presses no FIRE for the agent; envpool's default (use_fire_reset=True) differs

ATARI_PREFIX = "ALE/"  # ale-py registers its games as ALE/<Game>-v5
ATARI_HINT = "expected an ALE id such as 'ALE/Breakout-v5'"


def is_atari(env_id: str) -> bool:
    """Whether ``env_id`` names an Atari game (``ALE/...``): it then gets the Atari preprocessing and preset.

    Only the prefix is read; whether ale-py registers the game is for the env backend to check
    (:func:`dueldqn.envs.atari.is_atari_id`), with ale-py imported.
    """
    return env_id.startswith(ATARI_PREFIX)
