"""Training throughput on CartPole-v1: dueldqn against Stable-Baselines3's DQN, same settings.

Both learn for 100k env steps with CleanRL's DQN hyperparameters (lr 2.5e-4, batch 128, buffer
10k, learning starts 10k, train every 10 steps, target sync every 500 steps, gamma 0.99, epsilon
1 -> 0.05 over half the run, a plain 120-84 MLP), Huber loss with gradient norm clipped at 10 and
Adam without weight decay (SB3's DQN defaults, which dueldqn is set to match). They run one after
the other in this process, ``--repeats`` times each, and the median env steps/s of the training
loop is reported (``learn()`` for SB3; the loop without the final evaluation for dueldqn).

SB3 runs with torch's default thread count (what its users get) and, for a like-for-like
comparison of the code paths, also with one thread, which dueldqn uses for small MLPs.
``dueldqn-torch`` is dueldqn with ``numpy_mlp=False``: acting and learning through torch
modules and autograd instead of numpy (the same maths), to show what that fast path is worth.

    pip install -e ".[bench]"
    python -m benchmarks.bench_speed            # about 4 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks._report import ratio_table, write_section

STEPS = 100_000
HYPER = {
    "learning_rate": 2.5e-4,
    "batch_size": 128,
    "buffer_size": 10_000,
    "learning_starts": 10_000,
    "train_frequency": 10,
    "target_sync_every": 500,
    "gamma": 0.99,
    "epsilon_start": 1.0,
    "epsilon_end": 0.05,
    "epsilon_decay_steps": STEPS // 2,
    "hidden_sizes": (120, 84),
}


def run_dueldqn(seed: int, steps: int, numpy_mlp: bool = True, **replay: Any) -> float:
    """Env steps/s of dueldqn's training loop."""
    from dueldqn.config import Config
    from dueldqn.training import train

    config = Config(
        env_id="CartPole-v1",
        seed=seed,
        total_steps=steps,
        dueling=False,
        loss="huber",
        max_grad_norm=10.0,
        weight_decay=0.0,
        target_sync="steps",
        eval_episodes=1,
        numpy_mlp=numpy_mlp,
        **{**HYPER, "epsilon_decay_steps": steps // 2, **replay},
    )
    with tempfile.TemporaryDirectory() as tmp:
        result = train(config, run_dir=Path(tmp) / "run", progress=False, tensorboard=False)
    return float(result.summary["steps_per_second"])


def run_sb3(seed: int, steps: int, threads: int | None) -> float:
    """Env steps/s of Stable-Baselines3's ``DQN.learn`` with the same settings."""
    import gymnasium as gym
    from stable_baselines3 import DQN
    from stable_baselines3.common.logger import Logger

    default_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        model = DQN(
            "MlpPolicy",
            gym.make("CartPole-v1"),
            learning_rate=HYPER["learning_rate"],
            buffer_size=HYPER["buffer_size"],
            learning_starts=HYPER["learning_starts"],
            batch_size=HYPER["batch_size"],
            tau=1.0,
            gamma=HYPER["gamma"],
            train_freq=HYPER["train_frequency"],
            gradient_steps=1,
            target_update_interval=HYPER["target_sync_every"],
            exploration_fraction=0.5,
            exploration_initial_eps=1.0,
            exploration_final_eps=0.05,
            max_grad_norm=10.0,
            policy_kwargs={"net_arch": list(HYPER["hidden_sizes"])},  # type: ignore[call-overload]
            seed=seed,
            device="cpu",
            verbose=0,
        )
        model.set_logger(Logger(None, []))  # SB3's default logger leaves a /tmp/SB3-<time> folder per model
        start = time.perf_counter()
        model.learn(total_timesteps=steps)
        return steps / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(default_threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    parser.add_argument(
        "--replay-variants", action="store_true", help="dueldqn with uniform, prioritized and 3-step replay instead"
    )
    args = parser.parse_args()
    if args.replay_variants:
        replay_variants(args)
        return

    results: dict[str, list[float]] = {"dueldqn": [], "dueldqn-torch": [], "sb3": [], "sb3-1thread": []}
    for repeat in range(args.repeats):
        results["dueldqn"].append(run_dueldqn(repeat, args.steps))
        results["dueldqn-torch"].append(run_dueldqn(repeat, args.steps, numpy_mlp=False))
        results["sb3"].append(run_sb3(repeat, args.steps, None))
        results["sb3-1thread"].append(run_sb3(repeat, args.steps, 1))
        print({k: round(v[-1]) for k, v in results.items()}, flush=True)
    body = (
        f"CartPole-v1, {args.steps:,} env steps, CleanRL's DQN hyperparameters (see the script), "
        f"{args.repeats} repeats run in turn in one process. SB3 {_sb3_version()} with "
        f"torch's default {torch.get_num_threads()} threads, and with 1 thread. dueldqn-torch is dueldqn with "
        "numpy_mlp=False (acting and learning through torch).\n\n" + ratio_table(results, digits=0)
    )
    print(body)
    if not args.no_write:
        write_section("speed-cartpole", "Training throughput: CartPole-v1 against Stable-Baselines3", body)


def replay_variants(args: argparse.Namespace) -> None:
    """The loop's throughput with prioritized replay and 3-step returns against uniform replay."""
    variants: dict[str, dict[str, Any]] = {
        "dueldqn": {},
        "per": {"prioritized": True},
        "3-step": {"n_step": 3},
        "per+3-step": {"prioritized": True, "n_step": 3},
    }
    results: dict[str, list[float]] = {name: [] for name in variants}
    for repeat in range(args.repeats):
        for name, replay in variants.items():
            results[name].append(run_dueldqn(repeat, args.steps, **replay))
        print({k: round(v[-1]) for k, v in results.items()}, flush=True)
    body = (
        f"CartPole-v1, {args.steps:,} env steps, the same settings as the section above (an update every 10 steps, "
        f"batch 128), {args.repeats} repeats in turn in one process; `dueldqn` is uniform replay, the others add "
        "prioritized replay (alpha 0.6, beta 0.4 -> 1) and/or 3-step returns. The last column is uniform's "
        "throughput over each variant's.\n\n" + ratio_table(results, digits=0)
    )
    print(body)
    if not args.no_write:
        write_section("speed-replay", "Training throughput with prioritized replay and n-step returns", body)


def _sb3_version() -> str:
    import stable_baselines3

    return str(stable_baselines3.__version__)


if __name__ == "__main__":
    main()
