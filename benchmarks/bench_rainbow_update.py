"""What one update costs with Rainbow's head: Atari (batch 32) beside DuelDQN's, and CartPole MLPs on numpy or torch.

Atari: :class:`dueldqn.learner.Learner` exactly as training runs it, on random uint8 frames of Breakout's
4 actions with 10-step discounts (``bench_atari_update``'s batches), channels_last weights, all torch
threads, no augmentation:

- ``atari100k`` (the spec's DuelDQN, Huber loss, the target network is the online one);
- ``atari100k-der`` (C51 dueling head, 51 atoms, noisy head layers, Double Q with a separate target
  network: a forward of ``s'`` through both networks and new noise for both, per update);
- ``atari100k-der`` without noise, to split the head's cost from the noise's.

CartPole (MLP 64-64, batch 256, the ``cartpole`` preset's): the plain dueling network through the
numpy MLP path and through torch, then C51, noisy and both through torch (the numpy path serves plain
heads only). Each variant runs ``--updates`` timed updates after 5 untimed ones, ``--repeats`` times in
turn with the others; the median (wall, process CPU) ms per update is reported.

    python -m benchmarks.bench_rainbow_update
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `python benchmarks/...` from a checkout

from benchmarks._report import write_section
from benchmarks.bench_atari_update import _batches, _clocks, _time_updates
from benchmarks.bench_learning import load_average
from dueldqn.agent import network_kwargs, noise_generator
from dueldqn.config import Config, resolve_config
from dueldqn.learner import Learner
from dueldqn.networks import build_q_network
from dueldqn.replay import Batch

ATARI = "ALE/Breakout-v5"
FRAMES = gym.spaces.Box(0, 255, (4, 84, 84), dtype=np.uint8)
CARTPOLE = gym.spaces.Box(-np.inf, np.inf, (4,), dtype=np.float32)

ATARI_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "atari100k (DuelDQN)": ("atari100k", {"augment": False}),
    "atari100k-der (C51 + noisy, double)": ("atari100k-der", {}),
    "atari100k-der without noise": ("atari100k-der", {"noisy": False}),
}
MLP_VARIANTS: dict[str, dict[str, Any]] = {
    "dueling, numpy MLP path": {"numpy_mlp": True},
    "dueling, torch": {"numpy_mlp": False},
    "C51 dueling, torch": {"distributional": True, "v_min": 0.0, "v_max": 100.0},
    "noisy dueling, torch": {"noisy": True},
    "C51 + noisy dueling, torch": {"distributional": True, "v_min": 0.0, "v_max": 100.0, "noisy": True},
}


def _learner(config: Config, space: gym.spaces.Box, n_actions: int, conv: bool) -> Learner:
    torch.manual_seed(0)
    net = build_q_network(space, gym.spaces.Discrete(n_actions), **network_kwargs(config))
    if conv:
        net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    cpu = torch.device("cpu")
    return Learner(
        net,
        config,
        device=cpu,
        generator=torch.Generator().manual_seed(0),
        noise_generator=noise_generator(config, cpu),
    )


def _mlp_batches(count: int, seed: int = 0) -> list[Batch]:
    rng = np.random.default_rng(seed)
    return [
        Batch(
            rng.normal(size=(256, 4)).astype(np.float32),
            rng.integers(0, 2, 256),
            np.ones(256, np.float32),
            rng.normal(size=(256, 4)).astype(np.float32),
            (rng.random(256) < 0.02).astype(np.float32),
        )
        for _ in range(count)
    ]


def bench(learners: dict[str, Learner], batches: list[Batch], updates: int, repeats: int) -> dict[str, np.ndarray]:
    """Median (wall, CPU) ms per update of each learner, the learners taking turns each repeat."""
    for learner in learners.values():
        _time_updates(learner, batches, 5, False)
    results: dict[str, list[np.ndarray]] = {name: [] for name in learners}
    for _ in range(repeats):
        for name, learner in learners.items():
            results[name].append(_time_updates(learner, batches, updates, False))
        print({k: np.round(v[-1], 3).tolist() for k, v in results.items()}, flush=True)
    return {name: np.median(np.stack(values), axis=0) for name, values in results.items()}


def rows(results: dict[str, np.ndarray]) -> str:
    base = next(iter(results.values()))
    return "\n".join(
        f"| {name} | {wall:.2f} | {cpu:.2f} | {wall / base[0]:.2f}x |" for name, (wall, cpu) in results.items()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mlp-updates", type=int, default=300)
    parser.add_argument("--no-write", action="store_true", help="print the tables, leave BENCHMARKS.md as it is")
    args = parser.parse_args()
    load_before, start = load_average(), _clocks()
    threads = torch.get_num_threads()
    atari = {
        name: _learner(resolve_config(ATARI, preset, overrides), FRAMES, 4, conv=True)
        for name, (preset, overrides) in ATARI_VARIANTS.items()
    }
    atari_ms = bench(atari, _batches(8), args.updates, args.repeats)
    torch.set_num_threads(1)  # MLPs: one thread for torch and numpy's BLAS, as the training loop runs them
    with threadpool_limits(limits=1, user_api="blas"):
        mlp = {
            name: _learner(resolve_config(preset="cartpole", overrides=overrides), CARTPOLE, 2, conv=False)
            for name, overrides in MLP_VARIANTS.items()
        }
        mlp_ms = bench(mlp, _mlp_batches(8), args.mlp_updates, args.repeats)
    torch.set_num_threads(threads)
    der_ms, dqn_ms = atari_ms["atari100k-der (C51 + noisy, double)"][0], atari_ms["atari100k (DuelDQN)"][0]
    rainbow_steps, rainbow_updates = 50_000_000, 50_000_000 // 4
    body = "\n\n".join(
        [
            f"Median of {args.repeats} repeats of {args.updates} (Atari) or {args.mlp_updates} (CartPole) updates "
            f"each; Atari on {threads} torch threads, CartPole on 1. Load average before: {load_before}; after: "
            f"{load_average()}. Total time: {(_clocks() - start)[0] / 1e3:.0f} s.",
            "### Atari, one update of 32 (Breakout, 4 actions)\n\n"
            "| learner | wall ms | CPU ms | wall / DuelDQN's |\n|---|---:|---:|---:|\n" + rows(atari_ms),
            "### CartPole MLP (64, 64), one update of 256\n\n"
            "| network, path | wall ms | CPU ms | wall / numpy dueling |\n|---|---:|---:|---:|\n" + rows(mlp_ms),
            "### What a full-budget Rainbow run would take here\n\n"
            f"The `rainbow` preset: {rainbow_steps:,} agent steps (200M frames), an update every 4 steps: "
            f"{rainbow_updates:,} updates. At {der_ms:.1f} ms an update (the DER learner's cost above; Rainbow's "
            f"differs only in its 3-step targets) the updates alone take {rainbow_updates * der_ms / 3.6e6:,.0f} "
            f"hours ({rainbow_updates * der_ms / 8.64e7:,.0f} days) on this CPU, before acting "
            f"({rainbow_steps:,} forward passes) and the emulator. atari100k's DuelDQN update costs "
            f"{dqn_ms:.1f} ms here, so Rainbow's is {der_ms / dqn_ms:.2f}x it: on a GPU, a Rainbow run costs "
            "about that factor times a DQN run's update time on the same GPU.",
        ]
    )
    print(body)
    if not args.no_write:
        write_section("rainbow-update", "Rainbow's update cost: Atari beside DuelDQN, CartPole numpy or torch", body)


if __name__ == "__main__":
    main()
