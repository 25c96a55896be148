"""``dueldqn tune``: a tiny study end to end, a killed study resumed, and bad spaces and storages refused."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import import_benchmark, kill_when_paused, start_cli, subprocess_env

optuna = pytest.importorskip("optuna")

from optuna import Study  # noqa: E402
from optuna.trial import FixedTrial, FrozenTrial, TrialState  # noqa: E402

from dueldqn.cli import main  # noqa: E402
from dueldqn.config import Config, load_config, resolve_config  # noqa: E402
from dueldqn.tune.space import build_space, default_space, parse_space, sample  # noqa: E402
from dueldqn.tune.storage import open_storage  # noqa: E402
from dueldqn.tune.study import TuneSettings, open_study, rung_steps  # noqa: E402

# A few hundred steps that learn something: the warm-up shortened, a small network, few eval episodes.
TINY_SPACE = {
    "learning_starts": 100,
    "buffer_size": {"choices": [1_000, 5_000]},
    "hidden_sizes": [32, 32],
    "batch_size": {"choices": [16, 32]},
}


def tune_args(tmp: Path, *extra: str, trials: int = 6, steps: int = 600) -> list[str]:
    space = tmp / "space.json"
    if not space.exists():
        space.write_text(json.dumps(TINY_SPACE))
    return [
        "tune",
        "--env",
        "CartPole-v1",
        "--trials",
        str(trials),
        "--steps",
        str(steps),
        "--study",
        "tiny",
        "--storage",
        f"sqlite:///{tmp / 'tiny.db'}",
        "--out",
        str(tmp / "out"),
        "--space",
        str(space),
        "--startup-trials",
        "2",
        "--eval-episodes",
        "3",
        "--no-progress",
        *extra,
    ]


def load(tmp: Path) -> Study:
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp / 'tiny.db'}")


def trial_value(trial: FrozenTrial) -> float:
    assert trial.value is not None  # a complete trial has its value
    return trial.value


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("tune")
    assert main(tune_args(tmp)) == 0
    return tmp


@pytest.mark.slow
def test_tiny_study_finishes_prunes_and_reports(tiny: Path) -> None:
    trials = load(tiny).trials
    states = [t.state for t in trials]
    assert len(trials) == 6 and set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert states.count(TrialState.PRUNED) >= 1
    for t in trials:  # greedy evaluations at 150, 300 and 450 steps, then the run's own at 600
        steps = sorted(t.intermediate_values)
        if t.state == TrialState.COMPLETE:
            assert steps == [150, 300, 450, 600]
            assert t.value == pytest.approx(sum(t.intermediate_values.values()) / 4)
            assert t.intermediate_values[600] == t.user_attrs["final_return"]
        else:
            assert steps in ([150], [150, 300], [150, 300, 450])
            assert t.value == t.intermediate_values[steps[-1]]  # optuna keeps a pruned trial's last value
        run_dir = tiny / "out" / "trials" / f"trial-{t.number:04d}"
        assert (run_dir / "config.json").is_file() and not (run_dir / "checkpoints").exists()
        assert (run_dir / "summary.json").is_file() == (t.state == TrialState.COMPLETE)
        assert not (run_dir / "tb").exists()  # TensorBoard off by default
        config = Config.from_dict(t.user_attrs["config"])
        assert (config.total_steps, config.learning_starts, config.hidden_sizes) == (600, 100, (32, 32))
        assert config.batch_size == t.params["batch_size"] and config.buffer_size == t.params["buffer_size"]

    best = max((t for t in trials if t.state == TrialState.COMPLETE), key=trial_value)
    assert load_config(tiny / "out" / "best_config.json").to_dict() == best.user_attrs["config"]
    table = (tiny / "out" / "top_trials.md").read_text()
    assert f"| {best.number} | {best.value:.1f} | {best.user_attrs['final_return']:.1f} |" in table
    for name in ("optimization_history", "param_importances", "parallel_coordinate"):
        assert (tiny / "out" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_best_config_trains_to_the_trials_result(tiny: Path) -> None:
    # train(stop_at=) pauses are bit-exact, so an uninterrupted run of the best config ends where the trial did.
    best = load(tiny).best_trial
    run_dir = tiny / "retrain"
    config = str(tiny / "out" / "best_config.json")
    assert main(["train", "--config", config, "--run-dir", str(run_dir), "--no-progress"]) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["total_steps"] == 600
    assert summary["eval_mean_return"] == best.user_attrs["final_return"]


@pytest.mark.slow
def test_the_same_command_again_runs_no_more_trials(tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(tune_args(tiny)) == 0
    assert len(load(tiny).trials) == 6
    assert "best: trial" in capsys.readouterr().out


@pytest.mark.slow
def test_killed_study_resumes_and_fails_the_running_trial(tmp_path: Path) -> None:
    # Trial 1 waits right after its first pause's checkpoint until the kill: it dies there on any machine,
    # with trial 0 finished.
    args = tune_args(tmp_path, trials=4, steps=1_500)
    first_pause = rung_steps(1_500, TuneSettings.rungs)[0]
    proc = start_cli(*args, pause_at=first_pause, marker=tmp_path / "paused", run_prefix="trial-0001")
    assert kill_when_paused(proc, tmp_path / "paused", signal.SIGKILL) == -signal.SIGKILL
    stderr = proc.stderr.read().decode()  # type: ignore[union-attr]
    query = (
        "SELECT t.number, t.state, (SELECT COUNT(*) FROM trial_user_attributes a WHERE a.trial_id = t.trial_id "
        "AND a.key = 'worker') FROM trials t ORDER BY t.number"
    )
    with contextlib.closing(sqlite3.connect(tmp_path / "tiny.db")) as db:
        rows: list[tuple[int, str, int]] = db.execute(query).fetchall()
    assert [r[0] for r in rows] == [0, 1] and rows[0][1] in ("COMPLETE", "PRUNED"), (rows, stderr[-2000:])
    assert rows[1][1:] == ("RUNNING", 1)  # trial 1 had recorded its worker, then died
    finished = load(tmp_path).trials[0]

    assert main(args) == 0
    trials = load(tmp_path).trials
    kept = trials[0]  # the finished trial is kept as it was
    assert (kept.state, kept.value, kept.params) == (finished.state, finished.value, finished.params)
    dead = trials[1]
    assert dead.state == TrialState.FAIL and "died" in dead.user_attrs["stopped"]
    retry = [t for t in trials if t.user_attrs.get("retry_of") == 1]
    # the parameters the dead trial had sampled are tried again (the rest, if it died while sampling, afresh)
    assert len(retry) == 1 and dead.params.items() <= retry[0].params.items() and retry[0].state != TrialState.FAIL
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 4


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"learning_rat": {"low": 1e-4, "high": 1e-3}}, "unknown parameter 'learning_rat'"),
        ({"total_steps": {"low": 1_000, "high": 2_000}}, "total_steps cannot be searched"),
        ({"learning_rate": {"low": 1e-2, "high": 1e-4}}, "learning_rate needs low < high"),
        ({"learning_rate": {"low": 0.0, "high": 1e-3, "log": True}}, "low must be positive"),
        ({"batch_size": {"low": 16.5, "high": 64}}, "batch_size is an integer field"),
        ({"gamma": {"low": 0.9, "high": 1.5}}, "gamma=1.5 is not a valid setting"),
        ({"loss": {"choices": ["mse", "l1"]}}, "loss must be one of mse, huber"),
        ({"loss": {"choices": []}}, "loss.choices must be a non-empty list"),
        ({"loss": {"low": 1, "high": 2}}, "loss is not numeric"),
        ({"gamma": {"low": 0.9, "high": 0.99, "scale": "log"}}, "unknown key(s) scale"),
        ({"batch_size": {"choices": [64, 20_000]}}, "batch_size up to 20000 exceeds buffer_size down to 10000"),
        ({"alpha": {"low": 0.4, "high": 0.8, "when": {"prioritized": "yes"}}}, "not one of its choices"),
        ({"tau": {"low": 0.01, "high": 0.1, "when": {"dueling_": True}}}, "names unknown field 'dueling_'"),
    ],
)
def test_bad_spaces_are_refused(entry: dict, message: str) -> None:
    base = resolve_config("CartPole-v1")
    with pytest.raises(ValueError) as err:
        parse_space({**default_space(base), **entry}, base)
    assert message in str(err.value)


def test_bad_space_file_is_refused_before_anything_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {low: 1e-2, high: 1e-4, log: true}\n")  # YAML 1.1 reads 1e-2 as a string
    assert main([*tune_args(tmp_path), "--space", str(space)]) == 2
    assert "learning_rate needs low < high; got low=0.01, high=0.0001" in capsys.readouterr().err
    space.write_text("- learning_rate\n")
    assert main([*tune_args(tmp_path), "--space", str(space)]) == 2
    assert "expected a mapping of config fields" in capsys.readouterr().err
    assert not (tmp_path / "tiny.db").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("runs/tune.db", "is not a database URL"),
        ("nosuchdb://host/name", "cannot open storage 'nosuchdb://host/name'"),
        ("sqlite://", "an in-memory SQLite database cannot be resumed"),
        ("journal:", "names no file"),
    ],
)
def test_bad_storages_are_refused(url: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError) as err:
        open_storage(url)
    assert message in str(err.value) and "expected sqlite:///PATH.db" in str(err.value)
    args = tune_args(tmp_path)
    args[args.index("--storage") + 1] = url
    assert main(args) == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_study_of_another_env_or_search_is_refused(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")

    def settings(env_id: str, steps: int) -> TuneSettings:
        base = resolve_config(env_id, overrides={"total_steps": steps})
        return TuneSettings(base=base, space=build_space(base), study_name="s", storage="", out_dir=tmp_path)

    open_study(settings("CartPole-v1", 1_000), storage)
    open_study(settings("CartPole-v1", 1_000), storage)  # the same again: resumed
    with pytest.raises(ValueError, match="was created for CartPole-v1, not Acrobot-v1"):
        open_study(settings("Acrobot-v1", 1_000), storage)
    with pytest.raises(ValueError, match=r"other settings: base_config \(total_steps\); space \(epsilon_decay"):
        open_study(settings("CartPole-v1", 2_000), storage)


def test_default_space_per_family_and_conditional_sampling() -> None:
    cartpole = resolve_config("CartPole-v1")  # double Q, steps target sync
    space = build_space(cartpole)
    names = [p.name for p in space.params]
    assert names == [
        "algo",
        "learning_rate",
        "batch_size",
        "buffer_size",
        "train_frequency",
        "gradient_steps",
        "target_sync_every",
        "epsilon_decay_steps",
        "hidden_sizes",
        "gamma",
        "loss",
        "n_step",
        "prioritized",
        "alpha",
        "beta0",
    ]
    assert space.params[0].choices == ("dqn", "double")
    decay = space.params[names.index("epsilon_decay_steps")]
    assert (decay.low, decay.high, decay.log) == (800, 20_000, True)  # total_steps 40,000 / 50 and / 2

    sarsa = build_space(resolve_config("CartPole-v1", overrides={"algo": "sarsa"}))
    assert sarsa.params[0].choices == ("sarsa", "expected-sarsa") and "epsilon_end" in [p.name for p in sarsa.params]
    polyak = [p.name for p in build_space(resolve_config("MountainCar-v0")).params]
    assert "tau" in polyak and "target_sync_every" not in polyak
    frames = [p.name for p in build_space(cartpole, frames=True).params]
    assert "hidden_sizes" not in frames and "n_step" not in frames

    params = {
        "algo": "dqn",
        "learning_rate": 3e-4,
        "batch_size": 64,
        "buffer_size": 10_000,
        "train_frequency": 4,
        "gradient_steps": 2,
        "target_sync_every": 500,
        "epsilon_decay_steps": 5_000,
        "hidden_sizes": "128x128",
        "gamma": 0.98,
        "loss": "huber",
        "n_step": 3,
        "prioritized": False,
    }
    changes = sample(space, FixedTrial(params), cartpole)  # alpha and beta0 are not asked for without PER
    assert changes == {**params, "hidden_sizes": [128, 128]}
    with_per = sample(space, FixedTrial({**params, "prioritized": True, "alpha": 0.5, "beta0": 0.3}), cartpole)
    assert (with_per["alpha"], with_per["beta0"]) == (0.5, 0.3)
    assert cartpole.replace(**with_per).hidden_sizes == (128, 128)


def test_rung_steps() -> None:
    assert rung_steps(40_000, 3) == [10_000, 20_000, 30_000]
    assert rung_steps(600, 1) == [300]
    assert rung_steps(600, 0) == []


@pytest.mark.slow
def test_default_path_never_imports_optuna() -> None:
    code = (
        "import sys\n"
        "from dueldqn.cli import main\n"
        "for argv in (['--help'], ['tune', '--help'], ['train', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "import dueldqn.training\n"
        "print('optuna' in sys.modules, 'sqlalchemy' in sys.modules)\n"
    )
    env = subprocess_env()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip().splitlines()[-1] == "False False"


@pytest.mark.slow
def test_jobs_share_one_journal_study(tmp_path: Path) -> None:
    args = tune_args(tmp_path, "--jobs", "2", "--rungs", "1", trials=3, steps=300)
    args[args.index("--storage") + 1] = f"journal:{tmp_path / 'tiny.journal'}"
    assert main(args) == 0
    study = optuna.load_study(study_name="tiny", storage=open_storage(f"journal:{tmp_path / 'tiny.journal'}"))
    done = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert 3 <= len(done) == len(study.trials) <= 4  # a worker may start one trial as the other ends the budget
    # Trials ran in the worker processes, never in this one. Whether the second worker gets a trial is a race
    # (the first may run all three 0.3 s trials while the second still imports torch), so no test counts on it.
    pids = {t.user_attrs["worker"]["pid"] for t in done}
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids
    assert sorted(p.name for p in (tmp_path / "out" / "trials").iterdir()) == [
        f"trial-{t.number:04d}" for t in sorted(done, key=lambda t: t.number)
    ]


def test_bench_tune_measures_steps_and_loop_seconds_to_the_threshold(tmp_path: Path) -> None:
    # The benchmark pauses every `chunk` steps (train(stop_at=)) and reads the loop's seconds from the
    # newest checkpoint: a threshold every policy reaches is met at the first pause, an impossible one never.
    measure = import_benchmark("bench_tune").measure

    config = Config(total_steps=600, learning_starts=100, eval_episodes=1, log_interval=200)
    met = measure(config, tmp_path / "met", chunk=200, threshold=-1.0)
    assert met["steps_to"] == 200 and 0.0 < met["seconds_to"] <= met["loop_seconds"]
    never = measure(config, tmp_path / "never", chunk=200, threshold=1e9)
    assert never["steps_to"] is None and never["seconds_to"] is None and never["final"] < 1e9
