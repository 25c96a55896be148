"""Presets: named sets of overrides on top of the :class:`~dueldqn.config.Config` defaults.

Each tuned preset was measured by ``benchmarks/bench_learning.py`` (BENCHMARKS.md has the figures);
the comment above each says where its values come from. ``dueldqn train --preset NAME`` takes one;
an env id given without ``--preset`` takes its entry in :data:`DEFAULT_PRESETS`.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "cartpole": {
        "env_id": "CartPole-v1",
        "algo": "double",
        "total_steps": 40_000,
        "hidden_sizes": (64, 64),
        "learning_rate": 2.3e-3,
        "lr_final_fraction": 0.0,
        "batch_size": 256,
        "buffer_size": 50_000,
        "learning_starts": 1_000,
        "train_frequency": 12,
        "gradient_steps": 5,
        "target_sync": "steps",
        "target_sync_every": 128,
        "epsilon_decay_steps": 5_000,
        "epsilon_end": 0.04,
    },
    # RL-Zoo's DQN settings, with Double Q, the lecture's MSE loss (with Huber, seed 2 ended at
    # -112.3), gradient clipping, the rate annealed to 0 and a Polyak-averaged target (the final
    # greedy policy varied least across seeds with these; BENCHMARKS.md has the variants tried).
    "mountaincar": {
        "env_id": "MountainCar-v0",
        "algo": "double",
        "total_steps": 120_000,
        "hidden_sizes": (256, 256),
        "learning_rate": 4e-3,
        "lr_final_fraction": 0.0,
        "weight_decay": 0.0,
        "loss": "mse",
        "max_grad_norm": 10.0,
        "batch_size": 128,
        "buffer_size": 10_000,
        "learning_starts": 1_000,
        "gamma": 0.98,
        "train_frequency": 16,
        "gradient_steps": 8,
        "target_sync": "polyak",
        "tau": 0.01,
        "epsilon_decay_steps": 24_000,
        "epsilon_end": 0.07,
    },
    "acrobot": {
        "env_id": "Acrobot-v1",
        "total_steps": 100_000,
        "hidden_sizes": (256, 256),
        "learning_rate": 6.3e-4,
        "lr_final_fraction": 0.0,
        "batch_size": 128,
        "buffer_size": 50_000,
        "learning_starts": 1_000,
        "train_frequency": 4,
        "target_sync": "steps",
        "target_sync_every": 250,
        "epsilon_decay_steps": 12_000,
        "epsilon_end": 0.1,
    },
    # The lecture's settings: AdamW lr 1e-4, batch 32, gamma 0.99, constant epsilon 0.2, target
    # synced every 10 episodes, warm-up of 10 x batch transitions, capacity 1e6, MSE loss.
    "lecture": {
        "learning_rate": 1e-4,
        "batch_size": 32,
        "gamma": 0.99,
        "epsilon_schedule": "constant",
        "epsilon_start": 0.2,
        "epsilon_end": 0.2,
        "target_sync": "episodes",
        "target_sync_every": 10,
        "learning_starts": 320,
        "buffer_size": 1_000_000,
        "loss": "mse",
        "lr_final_fraction": 1.0,
    },
}
# Toy text: the observation is a state index, one-hot encoded (dueldqn.spaces). Judged over 1,000
# greedy episodes: slippery FrozenLake's best policy reaches the goal in only ~74-77% of them.
PRESETS["frozenlake"] = {
    "env_id": "FrozenLake-v1",
    "algo": "double",
    "total_steps": 40_000,
    "hidden_sizes": (64, 64),
    "learning_rate": 1e-3,
    "lr_final_fraction": 0.0,
    "weight_decay": 0.0,
    "batch_size": 64,
    "buffer_size": 20_000,
    "learning_starts": 1_000,
    "gamma": 0.99,
    "train_frequency": 2,
    "target_sync": "steps",
    "target_sync_every": 500,
    "epsilon_decay_steps": 20_000,
    "epsilon_end": 0.1,
    "eval_episodes": 1_000,
}
# Taxi: 500 states one-hot (2 KB an observation, so a replay of 30k transitions takes 120 MB). The
# best policy averages 7.86-7.91 over the 1,000-episode evaluations of seeds 0-4 (value iteration on
# the env's model), so gymnasium's threshold of 8 is out of reach; 100k steps ended at 6.6 on seed 0.
PRESETS["taxi"] = {
    "env_id": "Taxi-v4",
    "algo": "double",
    "total_steps": 150_000,
    "hidden_sizes": (64, 64),
    "learning_rate": 1e-3,
    "lr_final_fraction": 0.1,
    "weight_decay": 0.0,
    "loss": "huber",
    "batch_size": 64,
    "buffer_size": 30_000,
    "learning_starts": 1_000,
    "gamma": 0.99,
    "train_frequency": 2,
    "target_sync": "steps",
    "target_sync_every": 1_000,
    "epsilon_decay_steps": 50_000,
    "epsilon_end": 0.05,
    "eval_episodes": 1_000,
}
# Deep SARSA values the epsilon-greedy policy it follows, not the greedy one it is judged by: 10k
# more steps (the rate annealed to 0 over them too) make that greedy policy solve every seed tried.
PRESETS["cartpole-sarsa"] = {**PRESETS["cartpole"], "algo": "sarsa", "total_steps": 50_000}

# Ape-X on CartPole (`--preset cartpole-apex`, needs `pip install "dueldqn[ray]"`): the cartpole
# preset with prioritized one-step replay, 2 runners of 2 envs whose rates anneal from 1 to Ape-X's,
# held to the local loop's replay ratio and kept near the learner (chunks of 25 steps, weights
# published every 10 updates and taken at every chunk), run for up to 60k env steps and stopped at
# the first greedy evaluation (20 episodes, every 2,000 steps) at or above 475. On the 2-core AMD
# EPYC it stopped there on 48 of 48 seeds (median 20,025 env steps, latest 34,000), and the stopped
# network's final evaluation on other start states was >= 475 on all 48 (lowest 480.6). Without the
# stop, the same settings for 40k steps ended at or above 475 on 17 of 19 runs on the 2-core Xeon
# (BENCHMARKS.md, "Ape-X on Ray" and its hand notes).
PRESETS["cartpole-apex"] = {
    **PRESETS["cartpole"],
    "executor": "ray",
    "num_env_runners": 2,
    "envs_per_runner": 2,
    "prioritized": True,
    "runner_rate_limit": True,
    "runner_chunk_steps": 25,
    "total_steps": 60_000,
    "eval_every": 2_000,
    "stop_return": 475.0,
    "weight_sync_every": 10,
    "runner_sync_steps": 1,
}

# Found by `python -m benchmarks.bench_tune --envs Acrobot-v1` (trial 25 of 30, TPE, 2026-11-22):
# on seeds 0-4 it ends higher than `acrobot` (mean -70.5 against -79.9) and reaches -100 in fewer
# env steps (median 20,000 against 25,000), but its loop takes 3.7x as long (4 updates of 256 every
# 8 steps, prioritized): `acrobot` stays the default, this one is for the best final policy.
PRESETS["acrobot-tuned"] = {
    **PRESETS["acrobot"],
    "algo": "double",
    "learning_rate": 0.004411868598519704,
    "batch_size": 256,
    "buffer_size": 100_000,
    "prioritized": True,
    "alpha": 0.7084154012029709,
    "beta0": 0.29118041926060484,
    "train_frequency": 8,
    "gradient_steps": 4,
    "gamma": 0.995,
    "n_step": 3,
    "epsilon_decay_steps": 2_095,
}

# Atari: the Nature DQN / Dueling DQN training settings as CleanRL's dqn_atari.py runs them (reported
# ~366 on Breakout after 10M steps): 10M agent steps (40M frames), replay of 1M transitions,
# 80k warm-up steps, an update every 4 steps on 32 transitions, target synced every 1,000 steps,
# epsilon 1 -> 0.01 over the first 1M steps, lr 1e-4 with AdamW (weight decay off: Adam).
# Evaluation as the papers: epsilon 0.05, whole games. The envs follow Dopamine's protocol (no FIRE
# on reset, 0-29 no-op agent steps, dueldqn.envs.atari), not CleanRL's wrappers.
PRESETS["atari"] = {
    "total_steps": 10_000_000,
    "learning_rate": 1e-4,
    "weight_decay": 0.0,
    "batch_size": 32,
    "buffer_size": 1_000_000,
    "learning_starts": 80_000,
    "train_frequency": 4,
    "gamma": 0.99,
    "target_sync": "steps",
    "target_sync_every": 1_000,
    "epsilon_schedule": "linear",
    "epsilon_start": 1.0,
    "epsilon_end": 0.01,
    "epsilon_decay_steps": 1_000_000,
    "eval_episodes": 10,
    "eval_epsilon": 0.05,
    "log_interval": 10_000,
    "checkpoint_every": 1_000_000,
}
PRESETS["breakout"] = {**PRESETS["atari"], "env_id": "ALE/Breakout-v5"}

# Atari 100k (Kaiser et al., 2020; 100k agent steps = 400k frames) with DrQ(epsilon) as Dopamine runs
# it (labs/atari_100k/configs/DrQ_eps.gin; Agarwal et al., 2021, IQM 0.280 over 26 games): the spec's
# dueling network; 10-step returns, gamma 0.99; one update per env step on 32 transitions after
# 1,600 warm-up steps; Adam lr 1e-4, eps 1.5e-4, no weight decay, no gradient clipping; Huber loss;
# target_update_period 1, i.e. the target network is the online one at every update (polyak with
# tau 1: a copy after every gradient step; the learner then uses the online network itself), which
# also makes Dopamine's Double DQN target equal to max_a' Q(s', a') (algo dqn, one forward less);
# epsilon 1 -> 0.01 over the 5k steps after the warm-up (linearly_decaying_epsilon with
# warmup_steps = min_replay_history); uniform replay that never forgets (1M in Dopamine; here twice
# the run, lead slots included, so nothing is evicted); DrQ augmentation of s and s'. Evaluation:
# 100 whole games at epsilon 0.001 (MaxEpisodeEvalRunner). The env side (no sticky actions, 0-30
# no-ops, life loss terminal and clipped rewards for training only, 27k-step cap) is the Atari envs'.
PRESETS["atari100k"] = {
    "total_steps": 100_000,
    "algo": "dqn",
    "n_step": 10,
    "gamma": 0.99,
    "loss": "huber",
    "learning_rate": 1e-4,
    "adam_eps": 1.5e-4,
    "weight_decay": 0.0,
    "max_grad_norm": 0.0,
    "batch_size": 32,
    "buffer_size": 200_000,
    "learning_starts": 1_600,
    "train_frequency": 1,
    "gradient_steps": 1,
    "target_sync": "polyak",
    "tau": 1.0,
    "epsilon_schedule": "linear",
    "epsilon_start": 1.0,
    "epsilon_end": 0.01,
    "epsilon_decay_steps": 5_000,
    "epsilon_decay_start": 1_600,
    "augment": True,
    "eval_episodes": 100,
    "eval_epsilon": 0.001,
    "log_interval": 1_000,
    "checkpoint_every": 50_000,
}

# Rainbow on CartPole: the cartpole preset (Double Q, dueling, its schedule and update ratio) with the other four
# parts: prioritized replay (alpha 0.5, beta 0.4 -> 1), 3-step returns, C51 (51 atoms on [0, 100]: CartPole's
# discounted return stays below 1 / (1 - 0.99)) and noisy head layers (sigma0 0.5), epsilon as the cartpole
# preset's. Seeds 0-4 end at a greedy 475 or more (BENCHMARKS.md, "C51 and Rainbow ... CartPole-v1").
PRESETS["cartpole-rainbow"] = {
    **PRESETS["cartpole"],
    "distributional": True,
    "atoms": 51,
    "v_min": 0.0,
    "v_max": 100.0,
    "noisy": True,
    "noisy_sigma0": 0.5,
    "prioritized": True,
    "alpha": 0.5,
    "beta0": 0.4,
    "n_step": 3,
}

# Rainbow (Hessel et al., 2018, Table 1) on Atari: the atari preset's envs, replay of 1M and evaluation, with
# all six parts: dueling, Double Q, prioritized replay (proportional, omega = alpha 0.5, beta 0.4 -> 1), 3-step
# returns, C51 (51 atoms on [-10, 10]) and noisy nets (sigma0 0.5, epsilon 0: the noise explores); Adam lr
# 6.25e-5, eps 1.5e-4; learning starts after 80k frames (20k agent steps); target synced every 32k frames
# (8k agent steps); an update of 32 every 4 agent steps; 200M frames (50M agent steps). Noisy layers are the
# head's two streams here (the paper's value and advantage layers; its 512-unit layers stay plain).
PRESETS["rainbow"] = {
    **PRESETS["atari"],
    "total_steps": 50_000_000,
    "algo": "double",
    "distributional": True,
    "atoms": 51,
    "v_min": -10.0,
    "v_max": 10.0,
    "noisy": True,
    "noisy_sigma0": 0.5,
    "prioritized": True,
    "alpha": 0.5,
    "beta0": 0.4,
    "n_step": 3,
    "learning_rate": 6.25e-5,
    "adam_eps": 1.5e-4,
    "learning_starts": 20_000,
    "target_sync_every": 8_000,
    "epsilon_schedule": "constant",
    "epsilon_start": 0.0,
    "epsilon_end": 0.0,
}

# Data-efficient Rainbow (DER; van Hasselt, Hessel and Aslanides, 2019) on Atari 100k as Dopamine runs it:
# dopamine/labs/atari_100k/configs/DER.gin of google/dopamine (read at commit 5873f5494ee0c2d7c016d0ab2ad530354fec59d0,
# the file last changed in 9f616b924451cc5c23800c49e8907ebc67f8498b), through JaxFullRainbowAgent's defaults:
# gamma 0.99; update_horizon 10 (SPR's, not DER's 20); min_replay_history 1,600; one update of 32 per agent step;
# target every 2,000 updates (= agent steps here); Adam lr 1e-4, eps 1.5e-4; noisy, dueling, double; 51 atoms,
# vmax 10 and vmin = -vmax; prioritized replay with priorities sqrt(loss) (alpha 0.5); no augmentation. With
# noisy=True the agent replaces the gin's epsilon_fn by zero_epsilon, so it trains at epsilon 0 and evaluates at
# epsilon_eval 0.001 (100 episodes, the noise off). Dopamine's NoisyNetwork starts sigma at 0.1 / sqrt(fan-in),
# hence noisy_sigma0 0.1. Differences left: Dopamine's importance weights use a constant beta 0.5 (here beta0 0.5
# annealed to 1 over the run), its 512-unit layer is noisy too (here only the head's streams), and its replay is
# 1M (here 200k: twice the run, nothing evicted). The env side is the atari100k preset's.
PRESETS["atari100k-der"] = {
    **PRESETS["atari100k"],
    "algo": "double",
    "loss": "mse",
    "augment": False,
    "distributional": True,
    "atoms": 51,
    "v_min": -10.0,
    "v_max": 10.0,
    "noisy": True,
    "noisy_sigma0": 0.1,
    "prioritized": True,
    "alpha": 0.5,
    "beta0": 0.5,
    "priority_eps": 1e-10,
    "target_sync": "steps",
    "target_sync_every": 2_000,
    "epsilon_schedule": "constant",
    "epsilon_start": 0.0,
    "epsilon_end": 0.0,
    "epsilon_decay_start": 0,
}

# The preset used when an env id is given without --preset (any other ALE/ id: "atari").
DEFAULT_PRESETS = {
    "CartPole-v1": "cartpole",
    "MountainCar-v0": "mountaincar",
    "Acrobot-v1": "acrobot",
    "ALE/Breakout-v5": "breakout",
    "FrozenLake-v1": "frozenlake",
    "Taxi-v4": "taxi",
}
