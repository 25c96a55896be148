"""Atari training throughput with learning on: dueldqn against Stable-Baselines3's DQN.

Breakout, the Nature-CNN dueling network for dueldqn (the spec's DuelDQN) and SB3's CnnPolicy,
an update every 4 env steps on 32 transitions, Huber loss with gradient norm clipped at 10, Adam
(AdamW without weight decay), lr 1e-4, target sync every 1,000 steps, a 10k replay, epsilon held at
0.05 (the greedy network runs on 95% of steps, as in most of a real run). Both warm up for
``--warmup`` steps without learning, then the env steps/s of the next ``--steps`` steps (learning
on) are measured: SB3 with a second ``learn`` call, dueldqn from the per-interval rows of its
metrics.csv. Torch's default thread count for both. The two run in turn in this process,
``--repeats`` times each; the median is reported.

    pip install -e ".[atari,bench]"
    python -m benchmarks.bench_atari_speed           # about 5 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import torch

from benchmarks._report import ratio_table, write_section

ENV_ID = "ALE/Breakout-v5"


def run_dueldqn(seed: int, warmup: int, steps: int, device: str) -> float:
    """Env steps/s of dueldqn over ``steps`` steps with learning on."""
    from dueldqn.config import resolve_config
    from dueldqn.training import train

    log = 250
    config = resolve_config(
        ENV_ID,
        None,
        {
            "seed": seed,
            "total_steps": warmup + steps,
            "learning_starts": warmup,
            "buffer_size": 10_000,
            "loss": "huber",
            "max_grad_norm": 10.0,
            "epsilon_schedule": "constant",
            "epsilon_start": 0.05,
            "eval_episodes": 1,
            "log_interval": log,
            "checkpoint_every": 0,
            "save_replay": False,
            "device": device,
        },
    )
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        train(config, run_dir=run_dir, progress=False, tensorboard=False)
        with (run_dir / "metrics.csv").open(newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["kind"] == "train" and int(r["step"]) > warmup]
    seconds = sum(log / float(r["steps_per_second"]) for r in rows)
    return len(rows) * log / seconds


def run_sb3(seed: int, warmup: int, steps: int, device: str) -> float:
    """Env steps/s of Stable-Baselines3's DQN over ``steps`` steps with learning on."""
    import ale_py
    import gymnasium as gym
    from stable_baselines3 import DQN
    from stable_baselines3.common.env_util import make_atari_env
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import VecFrameStack

    gym.register_envs(ale_py)
    env = make_atari_env(ENV_ID, n_envs=1, seed=seed, env_kwargs={"frameskip": 1, "repeat_action_probability": 0.0})
    model = DQN(
        "CnnPolicy",
        VecFrameStack(env, n_stack=4),
        learning_rate=1e-4,
        buffer_size=10_000,
        learning_starts=warmup,
        batch_size=32,
        tau=1.0,
        gamma=0.99,
        train_freq=4,
        gradient_steps=1,
        target_update_interval=1_000,
        exploration_fraction=0.1,
        exploration_initial_eps=0.05,
        exploration_final_eps=0.05,
        max_grad_norm=10.0,
        optimize_memory_usage=False,
        seed=seed,
        device=device,
        verbose=0,
    )
    model.set_logger(Logger(None, []))  # SB3's default logger leaves a /tmp/SB3-<time> folder per model
    model.learn(total_timesteps=warmup)
    start = time.perf_counter()
    model.learn(total_timesteps=steps, reset_num_timesteps=False)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1_000)
    parser.add_argument("--steps", type=int, default=2_000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    args = parser.parse_args()

    results: dict[str, list[float]] = {"dueldqn": [], "sb3": []}
    for repeat in range(args.repeats):
        results["dueldqn"].append(run_dueldqn(repeat, args.warmup, args.steps, args.device))
        results["sb3"].append(run_sb3(repeat, args.warmup, args.steps, args.device))
        print({k: round(v[-1], 1) for k, v in results.items()}, flush=True)
    body = (
        f"{ENV_ID}, device {args.device}, torch threads {torch.get_num_threads()}: env steps/s over {args.steps:,} "
        f"steps with learning on (after {args.warmup:,} warm-up steps), {args.repeats} repeats in turn.\n\n"
        + ratio_table(results, digits=1)
    )
    print(body)
    if not args.no_write:
        write_section(f"speed-atari-{args.device}", f"Atari throughput with learning on ({args.device})", body)


if __name__ == "__main__":
    main()
