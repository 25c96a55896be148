"""The GPU check: on a CUDA machine, in under 8 minutes, what the CUDA path costs and whether it learns.

One script for the day a GPU is lent for minutes. It records, in one JSON file written atomically
after every part (a lease that ends mid-way still leaves the parts done):

1. versions: torch, CUDA, cuDNN, the driver (``nvidia-smi``), the GPU, bf16 support, the CPU model;
2. the spec's DuelDQN update (the ``atari100k`` learner: Huber loss, 10-step targets, DrQ's augmentation,
   fused AdamW) at batch 32 and 256: fp32 NCHW, fp32 channels_last (what training uses) and
   channels_last under bf16 autocast; median ms per update over repeats, ``torch.cuda.synchronize()``
   before each clock read;
3. acting: one greedy action for one stack of frames (the loop's), and for 16 (vector evaluation);
4. host-to-device copies of a sampled batch (``obs`` and ``next_obs``, uint8): pageable and blocking,
   pinned per call with ``non_blocking`` (``dueldqn.tensors.to_device``, what training does) and a
   preallocated pinned buffer with ``non_blocking``;
5. the ``cartpole`` preset through the torch path on the device (``numpy_mlp`` off): env steps/s,
   updates and the final greedy return (it learns when the return is at least 475);
6. a short ``atari100k`` Breakout run on the device: env steps/s and updates/s overall and after the
   warm-up;
7. what a whole run would take, from the measured times (:func:`projected_seconds`):
   ``T = steps * t_other + max(0, steps - learning_starts) * updates_per_step * t_update``, with
   ``t_update`` the fp32 channels_last batch-32 update and ``t_other`` the rest of a Breakout loop step
   (act, env step, replay, sampling): for the ``atari100k`` preset (100k steps, 1 update each) and for
   the ``breakout`` preset (10M steps, batch 32, an update every 4 steps; its update does not augment,
   so the figure is an upper bound on that part). Neither includes the final evaluation.

``--device cpu --smoke`` runs every part with tiny sizes in seconds (a test does, so the script
cannot rot); the pinned-memory copies need CUDA and are recorded as skipped there.

    python -m benchmarks.gpu_check                      # on the GPU machine: about 3-5 minutes
    python -m benchmarks.gpu_check --device cpu --smoke --no-write --out /tmp/gpu_check.json
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks._report import command, machine, write_section
from dueldqn.files import atomic_write_json

ENV_ID = "ALE/Breakout-v5"
CARTPOLE_LEARNED = 475.0  # greedy return of a solved CartPole-v1 (its cap is 500)


@dataclass(frozen=True)
class Sizes:
    """How much each part does: the full check on a GPU, or the smoke run on a CPU."""

    batches: tuple[int, ...]  # update and copy batch sizes
    warmup_updates: int
    timed_updates: int
    repeats: int
    acts: int
    copies: int
    cartpole_steps: int  # the cartpole preset's 40k, or a few hundred
    cartpole_overrides: dict[str, Any]
    breakout_steps: int
    breakout_overrides: dict[str, Any]


FULL = Sizes(
    batches=(32, 256),
    warmup_updates=20,
    timed_updates=50,
    repeats=5,
    acts=500,
    copies=50,
    cartpole_steps=40_000,
    cartpole_overrides={},
    breakout_steps=10_000,
    breakout_overrides={"eval_episodes": 1, "eval_epsilon": 1.0, "log_interval": 500},
)
SMOKE = Sizes(  # the fewest calls that still run every line once timed; 1 torch thread
    batches=(2, 4),
    warmup_updates=1,
    timed_updates=1,
    repeats=2,
    acts=3,
    copies=3,
    cartpole_steps=300,
    cartpole_overrides={
        "learning_starts": 100,
        "batch_size": 16,
        "eval_episodes": 1,
        "log_interval": 100,
        "torch_threads": 1,
    },
    breakout_steps=60,
    breakout_overrides={
        "learning_starts": 40,
        "batch_size": 2,
        "buffer_size": 1_000,
        "eval_episodes": 1,
        "eval_epsilon": 1.0,
        "log_interval": 10,
        "n_step": 3,
        "torch_threads": 1,
    },
)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued kernels, so a clock read after it counts them."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def timed(device: torch.device, out: list[float]) -> Iterator[None]:
    """Append the wall seconds of the block to ``out``, the device's queue drained before both clock reads."""
    synchronize(device)
    start = time.perf_counter()
    yield
    synchronize(device)
    out.append(time.perf_counter() - start)


def _ms_row(seconds_per_call: list[float]) -> dict[str, Any]:
    """Median, least and most ms per call over repeats."""
    ms = [s * 1e3 for s in seconds_per_call]
    return {"ms_median": statistics.median(ms), "ms_min": min(ms), "ms_max": max(ms), "repeats": len(ms)}


def versions(device: torch.device) -> dict[str, Any]:
    """torch, CUDA, cuDNN, driver and GPU, Python, and the CPU (as lscpu names it)."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "machine": machine(),
        "driver": None,
        "gpu": None,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = {
            "name": props.name,
            "capability": f"{props.major}.{props.minor}",
            "memory_gib": round(props.total_memory / 2**30, 1),
            "bf16_supported": torch.cuda.is_bf16_supported(),
        }
        smi = shutil.which("nvidia-smi")
        if smi is not None:
            query = [smi, "--query-gpu=driver_version", "--format=csv,noheader"]
            out = subprocess.run(query, capture_output=True, text=True, timeout=30)
            info["driver"] = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    return info


def _batch(size: int, rng: np.random.Generator) -> Any:
    """A replay batch of random Breakout-shaped frames, as the frame replay returns one (10-step discounts)."""
    from dueldqn.replay import Batch

    frames = rng.integers(0, 256, size=(size, 5, 84, 84), dtype=np.uint8)
    return Batch(
        frames[:, :4].copy(),
        rng.integers(0, 4, size),
        rng.normal(size=size).astype(np.float32),
        frames[:, 1:].copy(),
        (rng.random(size) < 0.05).astype(np.float32),
        discounts=(0.99 ** rng.integers(1, 11, size)).astype(np.float32),
    )


UPDATE_VARIANTS = {  # name: (channels_last, bf16 autocast)
    "fp32 NCHW": (False, False),
    "fp32 channels_last": (True, False),
    "bf16 autocast channels_last": (True, True),
}
TRAINING_VARIANT = "fp32 channels_last"  # what dueldqn.training builds for conv networks


def bench_updates(device: torch.device, sizes: Sizes) -> list[dict[str, Any]]:
    """ms per DuelDQN update of the atari100k learner, per batch size and variant."""
    from dueldqn import DuelDQN
    from dueldqn.config import resolve_config
    from dueldqn.learner import Learner

    rng = np.random.default_rng(0)
    rows = []
    for batch_size in sizes.batches:
        batches = [_batch(batch_size, rng) for _ in range(4)]
        config = resolve_config(ENV_ID, "atari100k", {"batch_size": batch_size, "device": device.type})
        for name, (channels_last, bf16) in UPDATE_VARIANTS.items():
            torch.manual_seed(0)
            net = DuelDQN().to(device)
            if channels_last:
                net = net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            learner = Learner(net, config, device=device, generator=torch.Generator(device=device).manual_seed(0))
            autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

            def run(n: int, learner: Learner = learner, batches: list[Any] = batches) -> None:
                for i in range(n):
                    learner.update(batches[i % len(batches)], epsilon=0.01, lr=1e-4)

            seconds: list[float] = []
            with autocast:
                run(sizes.warmup_updates)  # cuDNN's algorithm choice, the allocator, lazy inits
                for _ in range(sizes.repeats):
                    with timed(device, seconds):
                        run(sizes.timed_updates)
            per_update = [s / sizes.timed_updates for s in seconds]
            row = {"batch": batch_size, "variant": name, **_ms_row(per_update)}
            row["updates_per_second"] = 1e3 / row["ms_median"]
            rows.append(row)
            print(f"update batch {batch_size:>3} {name:<28} {row['ms_median']:8.3f} ms", flush=True)
    return rows


def bench_act(device: torch.device, sizes: Sizes) -> list[dict[str, Any]]:
    """ms per greedy action of the DuelDQN (through :class:`dueldqn.actor.Actor`) for 1 and 16 frame stacks."""
    from dueldqn import DuelDQN
    from dueldqn.actor import Actor
    from dueldqn.exploration import ExplorationDraws

    torch.manual_seed(0)
    net = DuelDQN().to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    rows = []
    for envs in (1, 16):
        actor = Actor(net, 4, draws=ExplorationDraws(0, envs), device=device)
        obs_NO = np.random.default_rng(envs).integers(0, 256, size=(envs, 4, 84, 84), dtype=np.uint8)
        for _ in range(max(2, sizes.acts // 10)):
            actor.greedy(obs_NO)
        seconds: list[float] = []
        for _ in range(sizes.repeats):
            with timed(device, seconds):
                for _ in range(sizes.acts):
                    actor.greedy(obs_NO)  # returns numpy: the copy back waits for the device
        rows.append({"envs": envs, **_ms_row([s / sizes.acts for s in seconds])})
        print(f"act {envs:>2} envs {rows[-1]['ms_median']:8.3f} ms", flush=True)
    return rows


def _copy_pageable(arrays: tuple[np.ndarray, ...], device: torch.device) -> None:
    """Transfers off: pageable host memory, a blocking copy."""
    for array in arrays:
        torch.from_numpy(array).to(device)


def _copy_pinned_per_call(arrays: tuple[np.ndarray, ...], device: torch.device) -> None:
    """Transfers on, as training does (:func:`dueldqn.tensors.to_device`): pinned per call, non_blocking."""
    from dueldqn.tensors import to_device

    for array in arrays:
        to_device(array, device)


class _PreallocatedPinned:
    """Transfers on with one pinned buffer per array, reused: the copy into a buffer waits for its last upload."""

    def __init__(self, arrays: tuple[np.ndarray, ...], device: torch.device) -> None:
        self.arrays, self.device = arrays, device
        self.buffers = [torch.empty(a.shape, dtype=torch.uint8, pin_memory=True) for a in arrays]
        self.uploaded: list[torch.cuda.Event | None] = [None] * len(arrays)

    def __call__(self) -> None:
        for i, (buffer, array) in enumerate(zip(self.buffers, self.arrays, strict=True)):
            event = self.uploaded[i]
            if event is not None:
                event.synchronize()  # the buffer's last upload has been read; it can be overwritten
            buffer.copy_(torch.from_numpy(array))
            buffer.to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            self.uploaded[i] = event


def bench_copies(device: torch.device, sizes: Sizes) -> list[dict[str, Any]]:
    """ms to copy a batch's ``obs`` and ``next_obs`` (uint8 frame stacks) to the device, transfers off and on."""
    rows = []
    for batch_size in sizes.batches:
        rng = np.random.default_rng(batch_size)
        arrays = tuple(rng.integers(0, 256, size=(batch_size, 4, 84, 84), dtype=np.uint8) for _ in range(2))
        megabytes = sum(a.nbytes for a in arrays) / 1e6
        modes: dict[str, Callable[[], None]] = {"pageable, blocking": functools.partial(_copy_pageable, arrays, device)}
        if device.type == "cuda":
            modes["pinned per call, non_blocking"] = functools.partial(_copy_pinned_per_call, arrays, device)
            modes["preallocated pinned, non_blocking"] = _PreallocatedPinned(arrays, device)
        else:
            rows.append({"batch": batch_size, "mode": "pinned", "skipped": "pinned memory needs CUDA"})
        for mode, copy in modes.items():
            copy()
            seconds: list[float] = []
            for _ in range(sizes.repeats):
                with timed(device, seconds):
                    for _ in range(sizes.copies):
                        copy()
            row: dict[str, Any] = {"batch": batch_size, "mode": mode, "megabytes": megabytes}
            row |= _ms_row([s / sizes.copies for s in seconds])
            row["gigabytes_per_second"] = megabytes / row["ms_median"]
            rows.append(row)
            print(f"copy batch {batch_size:>3} {mode:<36} {row['ms_median']:8.3f} ms", flush=True)
    return rows


def _steady_steps_per_second(run_dir: Path, after: int) -> float:
    """Median env steps/s of the run's metrics.csv log rows after env step ``after`` (the warm-up)."""
    from dueldqn.logger import read_metrics

    rows = [r["steps_per_second"] for r in read_metrics(run_dir)["train"] if r["step"] > after]
    if not rows:
        raise ValueError(f"{run_dir}/metrics.csv has no log row after step {after}; lower log_interval")
    return statistics.median(rows)


def run_cartpole(device: torch.device, sizes: Sizes, seed: int) -> dict[str, Any]:
    """The cartpole preset through torch on ``device`` (numpy_mlp off): speed and the final greedy return."""
    from dueldqn.training import train

    with tempfile.TemporaryDirectory(prefix="gpu_check_cartpole_") as tmp:
        result = train(
            env_id="CartPole-v1",
            run_dir=Path(tmp) / "run",
            progress=False,
            tensorboard=False,
            device=device.type,
            numpy_mlp=False,
            seed=seed,
            total_steps=sizes.cartpole_steps,
            checkpoint_every=0,
            save_replay=False,
            **sizes.cartpole_overrides,
        )
        s = result.summary
    out = {
        key: s[key]
        for key in (
            "seed",
            "total_steps",
            "updates",
            "train_seconds",
            "steps_per_second",
            "eval_mean_return",
            "eval_std_return",
            "eval_episodes",
        )
    }
    out |= {
        "steps_asked": sizes.cartpole_steps,
        "learned_threshold": CARTPOLE_LEARNED,
        "learned": bool(s["eval_mean_return"] >= CARTPOLE_LEARNED),
    }
    print(
        f"cartpole: {s['total_steps']} steps at {s['steps_per_second']:,.0f}/s, greedy return "
        f"{s['eval_mean_return']:.1f} ({'learned' if out['learned'] else 'NOT learned'})",
        flush=True,
    )
    return out


def run_breakout(device: torch.device, sizes: Sizes, seed: int) -> dict[str, Any]:
    """A short atari100k Breakout run on ``device``: env steps/s and updates/s, overall and after the warm-up."""
    from dueldqn.config import resolve_config
    from dueldqn.training import train

    config = resolve_config(
        ENV_ID,
        "atari100k",
        {
            "seed": seed,
            "device": device.type,
            "total_steps": sizes.breakout_steps,
            "checkpoint_every": 0,
            "save_replay": False,
            **sizes.breakout_overrides,
        },
    )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)  # the run's own peak, not the batch-256 updates'
    with tempfile.TemporaryDirectory(prefix="gpu_check_breakout_") as tmp:
        run_dir = Path(tmp) / "run"
        result = train(config, run_dir=run_dir, progress=False, tensorboard=False)
        steady = _steady_steps_per_second(run_dir, config.learning_starts + config.log_interval)
    s = result.summary
    updates_per_step = config.gradient_steps / config.train_frequency
    out = {key: s[key] for key in ("seed", "total_steps", "updates", "train_seconds", "steps_per_second")}
    out |= {
        "steps_asked": sizes.breakout_steps,
        "learning_starts": config.learning_starts,
        "batch_size": config.batch_size,
        "updates_per_step": updates_per_step,
        "updates_per_second": s["updates"] / s["train_seconds"],
        "steps_per_second_after_warmup": steady,
        "updates_per_second_after_warmup": steady * updates_per_step,
        "max_memory_allocated_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
    }
    print(
        f"breakout: {s['total_steps']} steps, {s['steps_per_second']:,.1f} steps/s overall, {steady:,.1f} after "
        f"the warm-up ({out['updates_per_second_after_warmup']:,.1f} updates/s)",
        flush=True,
    )
    return out


def projected_seconds(
    steps: int, learning_starts: int, updates_per_step: float, t_other: float, t_update: float
) -> float:
    """``T = steps * t_other + max(0, steps - learning_starts) * updates_per_step * t_update`` (seconds)."""
    return steps * t_other + max(0, steps - learning_starts) * updates_per_step * t_update


def project(updates: list[dict[str, Any]], breakout: dict[str, Any]) -> dict[str, Any]:
    """What a 100k atari100k run and a 10M-step breakout-preset run take here, from the measured times."""
    from dueldqn.config import resolve_config

    batch = breakout["batch_size"]
    t_update = next(r["ms_median"] for r in updates if r["variant"] == TRAINING_VARIANT and r["batch"] == batch) / 1e3
    t_step = 1.0 / breakout["steps_per_second_after_warmup"]
    t_other = max(0.0, t_step - breakout["updates_per_step"] * t_update)
    a100k, b10m = resolve_config(ENV_ID, "atari100k"), resolve_config(ENV_ID, "breakout")
    runs = {}
    for name, c in (("atari100k", a100k), ("breakout", b10m)):
        per_step = c.gradient_steps / c.train_frequency
        seconds = projected_seconds(c.total_steps, c.learning_starts, per_step, t_other, t_update)
        runs[name] = {
            "total_steps": c.total_steps,
            "learning_starts": c.learning_starts,
            "updates_per_step": per_step,
            "batch_size": c.batch_size,
            "seconds": seconds,
            "hours": seconds / 3600,
        }
    formula = (
        "T = steps * t_other + max(0, steps - learning_starts) * updates_per_step * t_update; "
        f"t_update = {t_update * 1e3:.3f} ms ({TRAINING_VARIANT}, batch {batch}), "
        f"t_other = {t_other * 1e3:.3f} ms (a Breakout loop step {t_step * 1e3:.3f} ms minus its updates)"
    )
    print(formula, flush=True)
    for name, r in runs.items():
        print(
            f"  {name}: {r['total_steps']:,} steps -> {r['seconds'] / 60:,.1f} min ({r['hours']:.2f} h) of training "
            "loop, without the final evaluation",
            flush=True,
        )
    return {
        "formula": formula,
        "t_update_ms": t_update * 1e3,
        "t_step_ms": t_step * 1e3,
        "t_other_ms": t_other * 1e3,
        "runs": runs,
    }


def markdown(report: dict[str, Any]) -> str:
    """The BENCHMARKS.md body of a check."""
    v = report["versions"]
    gpu = v.get("gpu") or {}
    lines = [
        f"GPU: {gpu.get('name', 'none')}, driver {v.get('driver')}, CUDA {v.get('cuda')}, cuDNN {v.get('cudnn')}, "
        f"torch {v.get('torch')}; seed {report['seed']}. Raw JSON: `{report['out']}`.",
        "",
        "| update (atari100k learner) | batch | ms median (min-max) | updates/s |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r['variant']} | {r['batch']} | {r['ms_median']:.3f} ({r['ms_min']:.3f}-{r['ms_max']:.3f}) | "
        f"{r['updates_per_second']:,.0f} |"
        for r in report.get("update", [])
    ]
    lines += [
        "",
        "| host-to-device copy of obs + next_obs | batch | MB | ms median | GB/s |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['mode']} | {r['batch']} | {r['megabytes']:.1f} | {r['ms_median']:.3f} | "
        f"{r['gigabytes_per_second']:.2f} |"
        for r in report.get("copy", [])
        if "skipped" not in r
    ]
    lines += [""] + [f"Act: {r['envs']} env(s) {r['ms_median']:.3f} ms per greedy step." for r in report.get("act", [])]
    if "cartpole" in report:
        c = report["cartpole"]
        lines.append(
            f"CartPole (torch path on the device): {c['total_steps']:,} steps at {c['steps_per_second']:,.0f} "
            f"steps/s, {c['updates']:,} updates; greedy return {c['eval_mean_return']:.1f} over "
            f"{c['eval_episodes']} episodes ({'learned' if c['learned'] else 'not learned'})."
        )
    if "breakout" in report:
        b = report["breakout"]
        lines.append(
            f"Breakout atari100k, {b['total_steps']:,} steps: {b['steps_per_second']:,.1f} env steps/s overall, "
            f"{b['steps_per_second_after_warmup']:,.1f} after the warm-up "
            f"({b['updates_per_second_after_warmup']:,.1f} updates/s)."
        )
    if "projection" in report:
        p = report["projection"]
        lines += ["", f"Projection: {p['formula']}."]
        lines += [
            f"- {name}: {r['total_steps']:,} steps: {r['seconds'] / 60:,.1f} min ({r['hours']:.2f} h)"
            for name, r in p["runs"].items()
        ]
    if report["errors"]:
        lines += ["", "Errors: " + "; ".join(f"{k}: {v.splitlines()[-1]}" for k, v in report["errors"].items())]
    return "\n".join(lines)


def write_markdown(report: dict[str, Any]) -> None:
    """Write the check's section of BENCHMARKS.md, with the command and machine recorded where it ran."""
    gpu = report["versions"]["gpu"] or {"name": report["device"]}
    title = f"GPU check ({gpu['name']}{', smoke' if report['mode'] == 'smoke' else ''})"
    write_section(
        "gpu-check", title, markdown(report), command_line=report["command"], machine_line=report["versions"]["machine"]
    )


def main(argv: list[str] | None = None) -> int:
    """Run the check; returns 0 when every part ran (and CartPole learned, outside smoke mode), else 1."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: every part in seconds (for the tests)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the CartPole and Breakout runs (default 0)")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"), help="the JSON (default ./gpu_check.json)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["update", "act", "copy", "cartpole", "breakout"])
    parser.add_argument("--no-write", action="store_true", help="leave BENCHMARKS.md alone (smoke runs never write)")
    parser.add_argument("--from-json", type=Path, help="only write BENCHMARKS.md's section from a saved JSON")
    args = parser.parse_args(argv)
    if args.from_json is not None:  # a check run on a lent machine, its JSON brought back
        write_markdown(json.loads(args.from_json.read_text()))
        print(f"gpu_check: wrote the gpu-check section of BENCHMARKS.md from {args.from_json}")
        return 0
    args.command = command() if argv is None else shlex.join(["python", "-m", "benchmarks.gpu_check", *argv])
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "gpu_check: --device cuda but torch sees no CUDA GPU; use --device cpu --smoke to test the script",
            file=sys.stderr,
        )
        return 2
    device = torch.device(args.device)
    sizes = SMOKE if args.smoke else FULL
    threads = torch.get_num_threads()
    if args.smoke:  # the timings mean nothing there; one thread spares a busy machine
        torch.set_num_threads(1)
    try:
        return _check(args, device, sizes)
    finally:
        torch.set_num_threads(threads)


def _check(args: argparse.Namespace, device: torch.device, sizes: Sizes) -> int:
    start = time.perf_counter()
    report: dict[str, Any] = {
        "mode": "smoke" if args.smoke else "full",
        "device": str(device),
        "seed": args.seed,
        "command": args.command,
        "out": str(args.out),
        "versions": versions(device),
        "errors": {},
    }
    parts: dict[str, Callable[[], Any]] = {
        "update": lambda: bench_updates(device, sizes),
        "act": lambda: bench_act(device, sizes),
        "copy": lambda: bench_copies(device, sizes),
        "cartpole": lambda: run_cartpole(device, sizes, args.seed),
        "breakout": lambda: run_breakout(device, sizes, args.seed),
    }
    for name, part in parts.items():
        if name in args.skip:
            continue
        try:
            report[name] = part()
        except Exception:  # one failing part must not cost the others on a lease of minutes
            report["errors"][name] = traceback.format_exc()
            print(f"gpu_check: part {name} failed:\n{report['errors'][name]}", file=sys.stderr, flush=True)
        report["seconds"] = time.perf_counter() - start
        atomic_write_json(args.out, report)
    if "update" in report and "breakout" in report:
        try:
            report["projection"] = project(report["update"], report["breakout"])
        except Exception:
            report["errors"]["projection"] = traceback.format_exc()
    report["seconds"] = time.perf_counter() - start
    if not all(math.isfinite(v) for v in _numbers(report)):
        report["errors"]["numbers"] = "a timing or figure is not finite"
    atomic_write_json(args.out, report)
    print(f"gpu_check: {report['seconds']:.0f} s; wrote {args.out}", flush=True)
    if not args.smoke and not args.no_write:
        write_markdown(report)
    learned = args.smoke or "cartpole" not in report or report["cartpole"]["learned"]
    return 0 if not report["errors"] and learned else 1


def _numbers(value: Any) -> Iterator[float]:
    """Every float in a nested report."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, float):
        yield value


if __name__ == "__main__":
    sys.exit(main())
