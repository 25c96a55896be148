"""The command line end to end on a tiny budget, and bad input refused before anything runs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from dueldqn.agent import Agent
from dueldqn.cli import build_parser, main
from dueldqn.config import PRESETS, Config, resolve_config
from dueldqn.logger import read_metrics
from dueldqn.training import SUMMARY_FIELDS

TINY = [
    "--steps",
    "600",
    "--learning-starts",
    "250",
    "--batch-size",
    "16",
    "--eval-episodes",
    "2",
    "--log-interval",
    "200",
    "--train-frequency",
    "1",
    "--gradient-steps",
    "1",
    "--no-progress",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "run"
    assert (
        main(["train", "--env", "CartPole-v1", "--algo", "double", "--seed", "3", "--run-dir", str(path), *TINY]) == 0
    )
    return path


def test_train_leaves_the_documented_run_dir(run_dir: Path) -> None:
    names = {p.name for p in run_dir.iterdir()}
    assert {
        "config.json",
        "metrics.csv",
        "tb",
        "learning_curve.png",
        "model.safetensors",
        "summary.json",
        "eval.json",
    } <= names
    assert any(p.name.startswith("events.out.tfevents") for p in (run_dir / "tb").iterdir())
    assert (run_dir / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    summary = json.loads((run_dir / "summary.json").read_text())
    assert tuple(summary) == SUMMARY_FIELDS
    assert (summary["env_id"], summary["algo"], summary["seed"], summary["total_steps"]) == (
        "CartPole-v1",
        "double",
        3,
        600,
    )
    # one gradient step per env step from step 250 to 600
    assert summary["updates"] == 351
    assert summary["eval_episodes"] == 2
    assert summary["steps_per_second"] == pytest.approx(600 / summary["train_seconds"])
    assert summary["wall_seconds"] >= summary["train_seconds"] + summary["eval_seconds"]  # the run's time holds both

    config = json.loads((run_dir / "config.json").read_text())
    assert Config.from_dict(config) == resolve_config(
        "CartPole-v1",
        None,
        {
            "algo": "double",
            "seed": 3,
            "total_steps": 600,
            "learning_starts": 250,
            "batch_size": 16,
            "eval_episodes": 2,
            "log_interval": 200,
            "train_frequency": 1,
            "gradient_steps": 1,
        },
    )

    rows = read_metrics(run_dir)
    episodes = rows["episode"]
    assert sum(r["length"] for r in episodes) <= 600 and [r["episode"] for r in episodes] == list(
        range(1, len(episodes) + 1)
    )
    assert [r["step"] for r in rows["train"]] == [200, 400, 600]
    assert "loss" not in rows["train"][0] and rows["train"][1]["loss"] > 0
    assert all(r["return"] == r["length"] for r in episodes)  # CartPole pays 1 per step

    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert evaluation["mean_return"] == pytest.approx(summary["eval_mean_return"])
    assert len(evaluation["returns"]) == 2


def test_eval_and_plot_commands(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(run_dir), "--episodes", "3", "--epsilon", "0"]) == 0
    out = capsys.readouterr().out
    evaluation = json.loads((run_dir / "eval.json").read_text())
    assert len(evaluation["returns"]) == 3
    assert f"eval return {np.mean(evaluation['returns']):.2f} +- {np.std(evaluation['returns']):.2f}" in out
    png = tmp_path / "cmp.png"
    assert main(["plot", str(run_dir), str(run_dir), "-o", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_agent_predict_follows_the_sb3_convention(run_dir: Path) -> None:
    agent = Agent.load(run_dir)
    obs = np.array([0.01, -0.02, 0.03, 0.04], dtype=np.float32)
    action, state = agent.predict(obs, deterministic=True)
    assert state is None and np.shape(action) == () and int(action) in (0, 1)
    batch = np.stack([obs, -obs, obs])
    actions, _ = agent.predict(batch)
    assert actions.shape == (3,) and actions[0] == action == actions[2]
    assert np.array_equal(actions, agent.q_values(batch).argmax(axis=1))
    agent.epsilon = 1.0
    random_actions, _ = agent.predict(np.repeat(obs[None], 2000, axis=0), deterministic=False)
    assert 0.4 < random_actions.mean() < 0.6
    with pytest.raises(ValueError, match=r"expected an observation of shape \(4,\)"):
        agent.predict(np.zeros(3))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--env", "CartPole-v9"], "unknown environment id 'CartPole-v9'"),
        (["--env", "Pendulum-v1"], "Discrete action space"),
        (["--learning-rate", "-0.1"], "learning_rate must be positive"),
        (["--gamma", "1.5"], "gamma must lie in [0, 1]"),
        (["--apex-epsilon-base", "0"], "apex_epsilon_base must lie in (0, 1]"),
        (["--apex-epsilon-alpha", "-1"], "apex_epsilon_alpha must be >= 0"),
        (["--batch-size", "64", "--buffer-size", "32"], "must not exceed the replay capacity"),
        (["--algo", "ppo"], "algo must be one of dqn, double, sarsa, expected-sarsa"),
        (["--target-sync", "sometimes"], "target_sync must be one of episodes, steps, polyak"),
        (["--stop-return", "475"], "stop_return needs evaluations during training: set eval_every"),
        (["--eval-every", "-1"], "eval_every must be a non-negative integer"),
        (["--eval-every", "200", "--stop-return", "nan"], "stop_return must be a number"),
    ],
)
def test_bad_input_is_refused_before_anything_runs(
    args: list[str], fragment: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), *TINY, *args]) == 2
    assert fragment in capsys.readouterr().err
    assert not run.exists()


def test_stop_return_ends_the_run_and_says_where(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), *TINY, "--eval-every", "200", "--stop-return", "1"]) == 0
    assert "reached it at step 200, where the run stopped" in capsys.readouterr().out
    assert json.loads((run / "summary.json").read_text())["stop_return_reached_at"] == 200


def test_unknown_preset_and_used_run_dir_are_refused(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--preset", "breakdance"])
    assert exit_info.value.code == 2 and "invalid choice: 'breakdance'" in capsys.readouterr().err
    before = sorted(p.name for p in run_dir.iterdir())
    assert main(["train", "--run-dir", str(run_dir), *TINY]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in run_dir.iterdir()) == before
    assert main(["eval", str(tmp_path)]) == 2
    assert "expected a run directory" in capsys.readouterr().err


def test_switches_must_be_booleans() -> None:
    # A config file or API call with "false" as a string would otherwise switch the option on.
    with pytest.raises(ValueError, match="numpy_mlp must be true or false; got 'no'"):
        Config(numpy_mlp="no")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dueling must be true or false; got 'false'"):
        Config.from_dict({"dueling": "false"})
    assert Config.from_dict({"numpy_mlp": False, "save_replay": False}).numpy_mlp is False


def test_presets_resolve_in_order() -> None:
    assert resolve_config() == Config.from_dict(PRESETS["cartpole"])
    assert resolve_config("Acrobot-v1").learning_rate == PRESETS["acrobot"]["learning_rate"]
    assert resolve_config(None, None, {"algo": "sarsa"}).algo == "sarsa"
    lecture = resolve_config("MountainCar-v0", "lecture")
    assert (lecture.env_id, lecture.learning_rate, lecture.batch_size, lecture.epsilon_schedule) == (
        "MountainCar-v0",
        1e-4,
        32,
        "constant",
    )
    assert (lecture.epsilon_start, lecture.target_sync, lecture.target_sync_every) == (0.2, "episodes", 10)
    assert (lecture.learning_starts, lecture.buffer_size, lecture.loss, lecture.gamma) == (320, 10**6, "mse", 0.99)
    assert resolve_config("CartPole-v1", None, {"learning_rate": 0.5}).learning_rate == 0.5
    with pytest.raises(ValueError, match="unknown config field"):
        Config.from_dict({"learning_rat": 1.0})


def test_eval_video_records_one_episode(run_dir: Path) -> None:
    from PIL import Image

    assert main(["eval", str(run_dir), "--episodes", "1", "--video"]) == 0
    clips = [p for p in run_dir.iterdir() if p.stem == "video"]
    assert len(clips) == 1 and clips[0].suffix in (".mp4", ".gif")
    if clips[0].suffix == ".gif":
        length = json.loads((run_dir / "eval.json").read_text())["lengths"][0]
        with Image.open(clips[0]) as gif:
            assert gif.size == (600, 400)  # CartPole's rgb_array frame
            assert 2 <= gif.n_frames <= length + 1  # the reset frame and one per step (repeats merged)


def test_help_lists_every_config_field(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in Config.__dataclass_fields__:
        assert "--" + name.replace("_", "-") in out
    assert "--steps" in out and "--env" in out and "--resume" in out and "99% of the way" in out


def test_the_python_api_is_importable_as_documented() -> None:
    import dueldqn
    import dueldqn.training  # importing the module must not shadow the function

    assert callable(dueldqn.train) and dueldqn.train is dueldqn.training.train
    from dueldqn import Agent, Config, train

    assert train is dueldqn.training.train and callable(Agent.load) and Config().env_id == "CartPole-v1"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices)


def test_only_declared_spellings_are_accepted() -> None:
    # argparse takes any unique prefix of an option by default: `--lr 3e-4` used to set
    # --lr-final-fraction. Every prefix of every declared option that is not itself declared is refused.
    parser = build_parser()
    for name, sub in _subparsers(parser).items():
        declared = set(sub._option_string_actions)
        for option in declared:
            for end in range(3, len(option)):
                prefix = option[:end]
                if prefix in declared:
                    continue
                with pytest.raises(SystemExit):
                    parser.parse_args([name, prefix, "1"])
    assert "--lr" in _subparsers(parser)["train"]._option_string_actions


def test_lr_is_the_learning_rate() -> None:
    args = build_parser().parse_args(["train", "--lr", "3e-4"])
    assert args.learning_rate == 3e-4 and args.lr_final_fraction is None
    args = build_parser().parse_args(["train", "--learning-rate", "3e-4", "--lr-final-fraction", "0.5"])
    assert (args.learning_rate, args.lr_final_fraction) == (3e-4, 0.5)


def test_help_loads_no_heavy_module() -> None:
    # `dueldqn --help` answered in 4.8 s when the CLI imported torch; it needs only the config module.
    import subprocess
    import sys

    code = (
        "import sys, dueldqn.cli\n"
        "heavy = {'torch', 'gymnasium', 'matplotlib', 'tensorboard', 'numpy'} & set(sys.modules)\n"
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_and_plot_load_no_torch(tmp_path: Path) -> None:
    # The CLI catches the training errors from dueldqn.errors and imports a subcommand's modules in the
    # subcommand: `dueldqn --help` and `dueldqn plot` (matplotlib, metrics.csv) never load torch.
    import subprocess
    import sys

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"env_id": "CartPole-v1", "algo": "dqn", "seed": 0}))
    rows = [
        "kind,step,episode,return,length,loss,epsilon,steps_per_second",
        "episode,20,1,20,20,,,",
        "episode,50,2,30,30,,,",
        "train,50,,,,0.5,0.9,1000",
    ]
    (run / "metrics.csv").write_text("\n".join(rows) + "\n")
    png = tmp_path / "curves.png"
    code = (
        "import sys\n"
        "from dueldqn.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit as stop:\n"
        "    assert stop.code == 0, stop.code\n"
        "print('help', sorted({'torch', 'gymnasium', 'matplotlib'} & set(sys.modules)))\n"
        f"status = main(['plot', {str(run)!r}, '-o', {str(png)!r}])\n"
        "print('plot', status, sorted({'torch', 'tensorboard', 'gymnasium'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert "help []" in lines and lines[-2:] == [f"wrote {png}", "plot 0 []"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
