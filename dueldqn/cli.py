"""The ``dueldqn`` command line: ``train``, ``eval`` and ``plot``.

Every :class:`~dueldqn.config.Config` field is an option of ``train`` (``--learning-rate 3e-4``,
``--hidden-sizes 128 128``, ``--no-dueling``); only the options given override the preset.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path

# Only the light config module at import: `dueldqn --help` must not wait for torch.
from dueldqn.config import (
    ALGORITHMS,
    BACKENDS,
    DEVICES,
    EXECUTORS,
    LOSSES,
    PRESETS,
    SCHEDULES,
    TARGET_SYNCS,
    Config,
    field_docs,
)

# Short names for the options used most; the long field names work too. Only these spellings are
# accepted: abbreviations are off (argparse would otherwise take ``--lr`` for ``--lr-final-fraction``).
ALIASES = {"env_id": ["--env"], "total_steps": ["--steps"], "learning_rate": ["--lr"]}
# Shown in the usage; the Config checks the value and names the choices when it is wrong.
CHOICES = {"algo": ALGORITHMS, "loss": LOSSES, "target_sync": TARGET_SYNCS, "epsilon_schedule": SCHEDULES,
           "device": DEVICES, "backend": BACKENDS, "executor": EXECUTORS}  # fmt: skip


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    docs = field_docs()
    hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        flags = [*ALIASES.get(f.name, []), "--" + f.name.replace("_", "-")]
        kind = hints[f.name]
        help_text = f"{docs.get(f.name, '')} (default: preset, else {f.default})".replace("%", "%%")
        if kind is bool:
            parser.add_argument(
                *flags, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        elif typing.get_origin(kind) is tuple:
            parser.add_argument(*flags, dest=f.name, type=int, nargs="+", default=None, metavar="N", help=help_text)
        else:
            if isinstance(kind, types.UnionType):  # e.g. float | None
                kind = next(a for a in typing.get_args(kind) if a is not type(None))
            metavar = "{" + ",".join(CHOICES[f.name]) + "}" if f.name in CHOICES else None
            parser.add_argument(*flags, dest=f.name, type=kind, default=None, metavar=metavar, help=help_text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``dueldqn`` command."""
    parser = argparse.ArgumentParser(
        prog="dueldqn", description="Deep Q-learning with the Dueling DQN network.", allow_abbrev=False
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train an agent (default: the CartPole-v1 preset)", allow_abbrev=False)
    train.add_argument("--preset", choices=sorted(PRESETS), help="named settings (default: the env's own preset)")
    train.add_argument(
        "--run-dir", type=Path, help="where the run's files go (default: runs/<env>__<algo>__s<seed>__<time>)"
    )
    train.add_argument("--config", type=Path, help="a config.json to start from (e.g. an earlier run's)")
    train.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue RUN_DIR from its newest whole checkpoint (--steps may rise)",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_config_options(train)

    ev = sub.add_parser("eval", help="evaluate a trained run and write eval.json", allow_abbrev=False)
    ev.add_argument("run_dir", type=Path)
    ev.add_argument("--episodes", type=int, default=20)
    ev.add_argument("--epsilon", type=float, default=None, help="exploration rate (default: the run's eval_epsilon)")
    ev.add_argument(
        "--seed", type=int, default=None, help="seed of the evaluation env (default: the run's seed + 10000)"
    )
    ev.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    ev.add_argument("--video", action="store_true", help="also record one episode to video.mp4 (or video.gif)")

    plot = sub.add_parser("plot", help="overlay the learning curves of one or more runs", allow_abbrev=False)
    plot.add_argument("run_dirs", type=Path, nargs="+")
    plot.add_argument("-o", "--output", type=Path, default=Path("learning_curves.png"))
    return parser


def _train(args: argparse.Namespace) -> None:
    from dueldqn.config import load_config, resolve_config
    from dueldqn.training import train

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if getattr(args, f.name) is not None}
    if args.resume is not None:
        if args.config is not None or args.preset is not None or args.run_dir is not None:
            raise ValueError(
                "--resume continues a run with its own config; it takes no --config, --preset or --run-dir"
            )
        result = train(resume=args.resume, progress=not args.no_progress, **overrides)
    elif args.config is not None:
        config = load_config(args.config)
        if args.preset:
            raise ValueError("give either --config or --preset, not both")
        result = train(config.replace(**overrides), run_dir=args.run_dir, progress=not args.no_progress)
    else:
        config = resolve_config(overrides.pop("env_id", None), args.preset, overrides)
        result = train(config, run_dir=args.run_dir, progress=not args.no_progress)
    s = result.summary
    print(
        f"{s['env_id']} {s['algo']} seed {s['seed']}: eval return {s['eval_mean_return']:.1f} "
        f"+- {s['eval_std_return']:.1f} over {s['eval_episodes']} episodes; {s['total_steps']} steps in "
        f"{s['wall_seconds']:.1f} s ({s['steps_per_second']:,.0f} steps/s). Run: {result.run_dir}"
    )


def _eval(args: argparse.Namespace) -> None:
    from dueldqn.evaluate import evaluate_run

    result, written = evaluate_run(
        args.run_dir,
        episodes=args.episodes,
        epsilon=args.epsilon,
        seed=args.seed,
        device=args.device,
        video=args.video,
    )
    print(f"eval return {result.mean:.2f} +- {result.std:.2f} over {len(result.returns)} episodes")
    for path in written:
        print(f"wrote {path}")


def _plot(args: argparse.Namespace) -> None:
    from dueldqn.plotting import plot_runs

    print(f"wrote {plot_runs(args.run_dirs, args.output)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dueldqn`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    from dueldqn.training import TrainingDiverged, TrainingInterrupted

    try:
        {"train": _train, "eval": _eval, "plot": _plot}[args.command](args)
    except ValueError as err:
        print(f"dueldqn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f"dueldqn {args.command}: error: {err}", file=sys.stderr)
        return 3
    except TrainingInterrupted as err:
        print(f"dueldqn {args.command}: {err}", file=sys.stderr)
        return 128 + err.signum
    except KeyboardInterrupt:
        print(f"dueldqn {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
