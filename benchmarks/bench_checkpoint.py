"""Checkpoint size, write time and resume time: CartPole, and an Atari run with a 1M frame replay.

CartPole: the default preset's run, whose final checkpoint is measured on disk,
written again with :func:`save_checkpoint` (timed) and loaded (timed); then ``train(resume=...)``
of the finished run is timed (load, rebuild, restore, then the final evaluation).

Atari: a Breakout checkpoint whose replay holds 1M transitions (a full ``FrameReplayBuffer`` of the
``breakout`` preset's capacity, filled with random frames through its state), with DuelDQN's
online and target weights and AdamW moments, written and loaded back.

    python -m benchmarks.bench_checkpoint                # about 3 minutes; needs ~16 GB of memory
    python -m benchmarks.bench_checkpoint --atari-capacity 100000   # a smaller Atari replay
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _rewrite(ckpt_dir: Path, out_dir: Path) -> tuple[float, float]:
    """Seconds to load the checkpoint at ``ckpt_dir`` and to write it again under ``out_dir``."""
    from dueldqn.checkpoint import load_checkpoint, save_checkpoint

    start = time.perf_counter()
    ckpt = load_checkpoint(ckpt_dir)
    load_seconds = time.perf_counter() - start
    start = time.perf_counter()
    save_checkpoint(out_dir, ckpt.step, ckpt.states, meta=ckpt.meta, keep=1)
    return load_seconds, time.perf_counter() - start


def cartpole(tmp: Path) -> str:
    from dueldqn.checkpoint import list_checkpoints
    from dueldqn.training import train

    run_dir = tmp / "cartpole"
    steps = train(run_dir=run_dir, progress=False, tensorboard=False).summary["total_steps"]
    ckpt_dir = list_checkpoints(run_dir)[0]
    load_s, write_s = _rewrite(ckpt_dir, tmp / "cartpole-copy")
    start = time.perf_counter()
    train(resume=run_dir, progress=False, tensorboard=False)
    resume_s = time.perf_counter() - start
    replay = (ckpt_dir / "replay.npz").stat().st_size
    return (
        f"| CartPole-v1, `cartpole` preset at {steps:,} steps | {_size(ckpt_dir) / 1e6:.2f} MB "
        f"(replay {replay / 1e6:.2f} MB) "
        f"| {write_s:.3f} s | {load_s:.3f} s | {resume_s:.2f} s (with the 20-episode evaluation) |"
    )


def atari(tmp: Path, capacity: int) -> str:
    from dueldqn import DuelDQN
    from dueldqn.checkpoint import REPLAY, save_checkpoint
    from dueldqn.replay import FrameReplayBuffer

    # Fill the replay through add(), as training does: 1,000-step episodes of frames drawn from
    # a pool of random 84x84 frames (random pixels do not compress, like real ones mostly).
    replay = FrameReplayBuffer(capacity, (4, 84, 84), np.uint8, num_envs=1)
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, size=(257, 84, 84), dtype=np.uint8)
    one = np.ones(1, dtype=bool)
    no = ~one
    obs = np.repeat(pool[:1], 4, axis=0)[None]
    for t in range(capacity):
        next_obs = np.concatenate([obs[:, 1:], pool[None, (t + 1) % 257][:, None]], axis=1)
        end = np.array([t % 1_000 == 999])
        replay.add(obs, np.array([t % 4]), np.ones(1, np.float32), next_obs, end, no, one)
        obs = np.repeat(pool[t % 257][None], 4, axis=0)[None] if end[0] else next_obs
    filled = replay.state_dict()
    net, target = DuelDQN(), DuelDQN()
    optimizer = torch.optim.AdamW(net.parameters())
    net(torch.rand(2, 4, 84, 84)).sum().backward()
    optimizer.step()
    tensors = {f"online.{k}": v for k, v in net.state_dict().items()} | {
        f"target.{k}": v for k, v in target.state_dict().items()
    }
    for index, moments in optimizer.state_dict()["state"].items():
        tensors |= {f"optimizer.{index}.{name}": torch.as_tensor(v) for name, v in moments.items()}
    run_dir = tmp / "atari"
    start = time.perf_counter()
    states = {
        "learner": tensors,
        "loop": {"obs_NO": np.zeros((1, 4, 84, 84), np.uint8), "note": "benchmark"},
        REPLAY: filled,
    }
    path = save_checkpoint(run_dir, 1, states, meta={"config": {}, "network": {}}, keep=1)
    write_s = time.perf_counter() - start
    del filled, replay
    load_s, _ = _rewrite(path, tmp / "atari-copy")
    return (
        f"| Breakout, DuelDQN + AdamW, frame replay of {capacity:,} transitions | {_size(path) / 1e9:.2f} GB "
        f"(replay {(path / 'replay.npz').stat().st_size / 1e9:.2f} GB) | {write_s:.1f} s | {load_s:.2f} s | "
        "see note |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--atari-capacity", type=int, default=1_000_000)
    parser.add_argument("--no-write", action="store_true", help="print only, leave BENCHMARKS.md alone")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dueldqn-ckpt-bench-", dir=Path.cwd()))
    try:
        rows = [cartpole(tmp), atari(tmp, args.atari_capacity)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    body = (
        "Checkpoints written to the working directory's disk (fsync'd), one at a time.\n\n"
        "| checkpoint | size | write | load | resume |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
        "Atari resume = load + rebuilding the envs and networks (seconds) + restoring each emulator from its "
        "saved state (the game's reset state and the actions since; see docs/checkpoints.md)."
    )
    print(body)
    if not args.no_write:
        from benchmarks._report import write_section

        write_section("checkpoints", "Checkpoint size, write and resume time", body)


if __name__ == "__main__":
    main()
