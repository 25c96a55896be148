"""The ``dueldqn`` command line: ``train``, ``eval``, ``plot``, ``tune`` and ``export``.

Every :class:`~dueldqn.config.Config` field is an option of ``train`` (``--learning-rate 3e-4``,
``--hidden-sizes 128 128``, ``--no-dueling``); only the options given override the preset.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path

# Only light modules at import (no torch, gymnasium, matplotlib): `dueldqn --help` must not wait for torch.
from dueldqn.config import (
    ACTION_MASKS,
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
from dueldqn.errors import TrainingDiverged, TrainingInterrupted

# Short names for the options used most; the long field names work too. Only these spellings are
# accepted: abbreviations are off (argparse would otherwise take ``--lr`` for ``--lr-final-fraction``).
ALIASES = {"env_id": ["--env"], "total_steps": ["--steps"], "learning_rate": ["--lr"]}
# Shown in the usage; the Config checks the value and names the choices when it is wrong.
CHOICES = {
    "algo": ALGORITHMS,
    "loss": LOSSES,
    "target_sync": TARGET_SYNCS,
    "epsilon_schedule": SCHEDULES,
    "device": DEVICES,
    "backend": BACKENDS,
    "executor": EXECUTORS,
    "action_mask": ACTION_MASKS,
}


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
    _add_tune_parser(sub)

    export = sub.add_parser(
        "export", help="write a run's network as ONNX (needs: pip install 'dueldqn[export]')", allow_abbrev=False
    )
    export.add_argument("run_dir", type=Path)
    export.add_argument("--format", dest="fmt", default="onnx", metavar="{onnx}", help="file format (default onnx)")
    export.add_argument("-o", "--output", type=Path, help="the model file (default RUN_DIR/model.FORMAT)")
    return parser


def _add_tune_parser(sub: argparse._SubParsersAction) -> None:
    tune = sub.add_parser(
        "tune", help="search hyperparameters with Optuna (needs: pip install 'dueldqn[tune]')", allow_abbrev=False
    )
    tune.add_argument("--env", dest="env_id", help="environment id (default: the preset's, else CartPole-v1)")
    tune.add_argument("--preset", choices=sorted(PRESETS), help="base settings each trial changes (default: the env's)")
    tune.add_argument("--trials", type=int, default=20, help="trials to finish, counted over resumes (default 20)")
    tune.add_argument("--study", help="study name (default: the env id, e.g. CartPole-v1)")
    tune.add_argument(
        "--storage",
        help="sqlite:///PATH.db, any SQLAlchemy URL, or journal:PATH (default: sqlite:///runs/tune/STUDY.db; "
        "with --jobs > 1, journal:runs/tune/STUDY.journal)",
    )
    tune.add_argument("--jobs", type=int, default=1, help="worker processes on this machine (default 1)")
    tune.add_argument("--space", type=Path, help="a .json/.yaml search space merged over the default one")
    tune.add_argument("--steps", type=int, help="env steps per trial (default: the preset's total_steps)")
    tune.add_argument("--seed", type=int, help="seed of the sampler and of every trial's training (default 0)")
    tune.add_argument(
        "--pruner",
        choices=("median", "halving", "none"),
        default="median",
        help="median: stop a trial below the median of earlier ones at a pause; halving: successive halving "
        "(default median)",
    )
    tune.add_argument("--rungs", type=int, default=3, help="greedy evaluations before a trial's end (default 3)")
    tune.add_argument("--eval-episodes", type=int, default=10, help="greedy episodes per evaluation (default 10)")
    tune.add_argument(
        "--startup-trials",
        type=int,
        default=5,
        help="random trials before TPE (default 5); the median pruner starts after min(3, this) complete trials",
    )
    tune.add_argument("--timeout", type=float, help="start no trial after this many seconds")
    tune.add_argument("--out", type=Path, help="trial runs, best config, table and plots (default runs/tune/STUDY)")
    tune.add_argument("--top", type=int, default=10, help="rows of the top-trials table (default 10)")
    tune.add_argument("--tensorboard", action="store_true", help="TensorBoard events for every trial (off)")
    tune.add_argument("--no-progress", action="store_true", help="no progress bar")


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
    if "stop_return_reached_at" in s:
        reached = s["stop_return_reached_at"]
        print(
            f"stop_return: an evaluation during training reached it at step {reached}, where the run stopped"
            if reached is not None
            else "stop_return: no evaluation during training reached it"
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


def _tune(args: argparse.Namespace) -> None:
    import re

    from dueldqn.config import resolve_config
    from dueldqn.envs import check_env_id, stacks_frames
    from dueldqn.tune.space import build_space

    for name, least in (
        ("trials", 1),
        ("jobs", 1),
        ("rungs", 0),
        ("eval_episodes", 1),
        ("startup_trials", 0),
        ("top", 1),
    ):
        if getattr(args, name) < least:
            raise ValueError(f"--{name.replace('_', '-')} must be an integer >= {least}; got {getattr(args, name)}")
    if args.timeout is not None and not args.timeout > 0:
        raise ValueError(f"--timeout must be a positive number of seconds; got {args.timeout}")
    overrides = {k: v for k, v in (("seed", args.seed), ("total_steps", args.steps)) if v is not None}
    base = resolve_config(args.env_id, args.preset, overrides)
    check_env_id(base.env_id)
    study_name = args.study or base.env_id.replace("/", "-")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", study_name):
        raise ValueError(f"--study must be letters, digits, '.', '_' or '-' (it names files); got {study_name!r}")
    space = build_space(base, args.space, frames=stacks_frames(base.env_id))  # refused here, before any trial
    if importlib.util.find_spec("optuna") is None:  # looked up, not imported: only dueldqn.tune imports Optuna
        raise ValueError("dueldqn tune needs Optuna: pip install 'dueldqn[tune]'")
    from dueldqn.tune.report import write_report
    from dueldqn.tune.storage import default_storage, storage_file
    from dueldqn.tune.study import TuneSettings, tune

    storage = args.storage
    if storage is None:
        storage, other = default_storage(study_name, args.jobs), default_storage(study_name, 1 if args.jobs > 1 else 2)
        other_file = storage_file(other)
        if other_file is not None and other_file.exists():
            raise ValueError(
                f"study {study_name!r} already lives in {other_file} (made with another --jobs); "
                f"pass --storage {other} to go on with it"
            )
    out = args.out or Path("runs/tune") / study_name
    settings = TuneSettings(
        base=base,
        space=space,
        study_name=study_name,
        storage=storage,
        out_dir=out,
        trials=args.trials,
        jobs=args.jobs,
        seed=base.seed,
        pruner=args.pruner,
        rungs=args.rungs,
        eval_episodes=args.eval_episodes,
        startup_trials=args.startup_trials,
        tensorboard=args.tensorboard,
        timeout=args.timeout,
    )
    study = tune(settings, progress=not args.no_progress)
    report = write_report(study, out, top=args.top)
    print(report.table)
    for name, why in report.skipped.items():
        print(f"not drawn: {name} ({why})")
    if report.best is not None:
        print(
            f"best: trial {report.best.number}, value {report.best.value:.1f}. "
            f"Train it with: dueldqn train --config {out / 'best_config.json'}"
        )
    for path in report.written:
        print(f"wrote {path}")


def _export(args: argparse.Namespace) -> None:
    from dueldqn.export import description_path, export_run

    path = export_run(args.run_dir, fmt=args.fmt, output=args.output)
    print(f"wrote {path} and {description_path(path)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dueldqn`` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        {"train": _train, "eval": _eval, "plot": _plot, "tune": _tune, "export": _export}[args.command](args)
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
