"""Checkpoints: exact resume after SIGKILL, clean exit on SIGINT, safe loading, divergence."""

from __future__ import annotations

import os
import pickle
import shutil
import signal
from pathlib import Path

import pytest
import torch
from conftest import finish, kill_when_paused, metrics_rows, start_cli
from safetensors.torch import load_file

import dueldqn.learner as learner_module
import dueldqn.numpy_mlp as numpy_mlp
import dueldqn.training as training_module
from dueldqn.agent import Agent
from dueldqn.checkpoint import list_checkpoints, load_checkpoint
from dueldqn.config import Config
from dueldqn.errors import EvaluationInterrupted, TrainingDiverged
from dueldqn.training import train

ARGS = [
    "train",
    "--env",
    "CartPole-v1",
    "--algo",
    "double",
    "--steps",
    "3000",
    "--checkpoint-every",
    "500",
    "--keep-checkpoints",
    "3",
    "--learning-starts",
    "200",
    "--batch-size",
    "32",
    "--train-frequency",
    "1",
    "--hidden-sizes",
    "32",
    "32",
    "--log-interval",
    "250",
    "--eval-episodes",
    "2",
    "--epsilon-decay-steps",
    "1500",
    "--no-progress",
]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("straight") / "run"
    finish(start_cli(*ARGS, "--run-dir", str(run_dir)))
    return run_dir


@pytest.mark.slow
def test_sigkill_twice_then_resume_equals_an_uninterrupted_run(uninterrupted: Path, tmp_path: Path) -> None:
    # Each run waits right after its checkpoint until the kill: the kill lands there on any machine.
    run_dir = tmp_path / "run"
    first = start_cli(*ARGS, "--run-dir", str(run_dir), pause_at=1000, marker=tmp_path / "paused-1000")
    assert kill_when_paused(first, tmp_path / "paused-1000", signal.SIGKILL) == -signal.SIGKILL
    assert [p.name for p in list_checkpoints(run_dir)] == ["step_000000001000", "step_000000000500"]
    second = start_cli("train", "--resume", str(run_dir), "--no-progress", pause_at=2500, marker=tmp_path / "p-2500")
    assert kill_when_paused(second, tmp_path / "p-2500", signal.SIGKILL) == -signal.SIGKILL
    assert list_checkpoints(run_dir)[0].name == "step_000000002500" and not (run_dir / "model.safetensors").exists()
    finish(start_cli("train", "--resume", str(run_dir), "--no-progress"))

    resumed, straight = load_file(run_dir / "model.safetensors"), load_file(uninterrupted / "model.safetensors")
    assert resumed.keys() == straight.keys()
    for name in straight:
        assert torch.equal(resumed[name], straight[name]), name
    rows, straight_rows = metrics_rows(run_dir), metrics_rows(uninterrupted)
    assert len(rows) == len(straight_rows) and rows == straight_rows
    for name in ("eval.json",):
        assert (run_dir / name).read_text() == (uninterrupted / name).read_text()
    # the last checkpoints hold the same state too
    a, b = load_checkpoint(list_checkpoints(run_dir)[0]), load_checkpoint(list_checkpoints(uninterrupted)[0])
    assert a.states["loop"]["updates"] == b.states["loop"]["updates"]
    learner_a, learner_b = a.states["learner"], b.states["learner"]
    assert all(torch.equal(learner_a[k], learner_b[k]) for k in learner_b if isinstance(learner_b[k], torch.Tensor))


@pytest.mark.slow
def test_sigint_writes_a_loadable_checkpoint_and_says_how_to_resume(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = start_cli(*ARGS, "--run-dir", str(run_dir), pause_at=500, marker=tmp_path / "paused")
    assert kill_when_paused(proc, tmp_path / "paused", signal.SIGINT) == 128 + signal.SIGINT
    message = proc.stderr.read().decode()  # type: ignore[union-attr]
    assert f"Resume with: dueldqn train --resume {run_dir}" in message
    newest = load_checkpoint(list_checkpoints(run_dir)[0])
    # the signal came while the run waited after checkpoint 500: the loop stops there and writes it again
    assert newest.step == newest.states["loop"]["steps"] == 500 and "replay" in newest.states
    # Every step is stored but the reset steps after episode ends (not yet taken if the last step ended one).
    loop = newest.states["loop"]
    assert len(newest.states["replay"]["actions"]) == loop["steps"] - loop["episodes"] + loop["autoreset_N"].sum()


class Payload:
    """Unpickling this runs code: it creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (str(self.marker), "w"))


SHORT = Config(
    total_steps=600,
    checkpoint_every=200,
    keep_checkpoints=3,
    learning_starts=200,
    batch_size=32,
    hidden_sizes=(32, 32),
    log_interval=200,
    eval_episodes=2,
)


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 600-step run, in this process, with checkpoints at 200, 400 and 600: what the loading tests damage."""
    run_dir = tmp_path_factory.mktemp("short") / "run"
    train(SHORT, run_dir=run_dir, progress=False, tensorboard=False)
    return run_dir


@pytest.fixture
def run_with_checkpoints(short_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(short_run, copy)
    return copy


@pytest.mark.parametrize("victim", ["tensors.safetensors", "arrays.npz", "replay.npz"])
def test_a_pickle_where_a_checkpoint_file_should_be_is_refused_unrun(
    run_with_checkpoints: Path, tmp_path: Path, victim: str
) -> None:
    newest, previous = list_checkpoints(run_with_checkpoints)[:2]
    marker = tmp_path / "pwned"
    (newest / victim).write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(ValueError, match="never loads pickles"):
        load_checkpoint(newest)
    assert not marker.exists()
    assert load_checkpoint(previous).step == 400


def test_a_torch_save_pickle_as_model_file_is_refused(run_with_checkpoints: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    torch.save({"x": Payload(marker)}, run_with_checkpoints / "model.safetensors")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        Agent.load(run_with_checkpoints)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncate", "corrupt", "gutted", "delete"])
def test_damaged_checkpoints_are_refused_and_the_previous_one_resumes(
    run_with_checkpoints: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    newest, previous = list_checkpoints(run_with_checkpoints)[:2]
    path = newest / "tensors.safetensors"
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        expected = "may be truncated, corrupt"
    elif damage == "corrupt":
        (newest / "state.json").write_text('{"format": 1, "step": ')
        expected = "is not readable JSON"
    elif damage == "gutted":  # readable JSON of the right format, without what a run needs
        (newest / "state.json").write_text('{"format": 2, "step": 600}')
        expected = "state.json lacks config, network, components; the checkpoint is damaged or foreign"
    else:
        path.unlink()
        expected = "is incomplete: tensors.safetensors is missing"
    with pytest.raises(ValueError, match=expected):
        load_checkpoint(newest)
    assert load_checkpoint(previous).step == 400
    # resuming skips the damaged checkpoint with a warning and ends where the run had ended
    with pytest.warns(UserWarning, match="skipping damaged checkpoint"):
        result = train(resume=run_with_checkpoints, progress=False, tensorboard=False)
    assert result.summary["total_steps"] == 600


def test_resume_refuses_other_networks_and_configs(run_with_checkpoints: Path) -> None:
    newest = list_checkpoints(run_with_checkpoints)[0]
    with pytest.raises(ValueError, match="only total_steps"):
        train(resume=run_with_checkpoints, learning_rate=0.1)
    config = (run_with_checkpoints / "config.json").read_text()
    (run_with_checkpoints / "config.json").write_text(
        config.replace('"hidden_sizes": [\n    32,\n    32\n  ]', '"hidden_sizes": [\n    16\n  ]')
    )
    with pytest.raises(ValueError, match="holds another network"):
        train(resume=run_with_checkpoints)
    assert newest.exists()
    with pytest.raises(ValueError, match=r"expected a run directory with config\.json"):
        train(resume=run_with_checkpoints.parent)
    for path in list_checkpoints(run_with_checkpoints):
        shutil.rmtree(path)
    with pytest.raises(ValueError, match="no whole checkpoint"):
        train(resume=run_with_checkpoints)


def test_resume_without_replay_refills_before_learning(tmp_path: Path) -> None:
    config = Config(
        total_steps=1200,
        checkpoint_every=600,
        learning_starts=300,
        batch_size=16,
        hidden_sizes=(16,),
        train_frequency=1,
        eval_episodes=1,
        save_replay=False,
    )
    run_dir = tmp_path / "run"
    train(config.replace(total_steps=600), run_dir=run_dir, progress=False, tensorboard=False)
    assert "replay" not in load_checkpoint(list_checkpoints(run_dir)[0]).states
    result = train(resume=run_dir, total_steps=1200, progress=False, tensorboard=False)
    # 301 updates in steps 300..600, then none until the replay is refilled: 600 + 300 .. 1200
    assert result.summary["updates"] == 301 + 301


def test_a_nan_loss_stops_the_run_naming_the_step(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_loss = learner_module.td_loss
    calls = {"n": 0}

    def poisoned(
        q_sa_B: torch.Tensor, target_B: torch.Tensor, loss: str = "mse", weights_B: torch.Tensor | None = None
    ) -> torch.Tensor:
        calls["n"] += 1
        out = real_loss(q_sa_B, target_B, loss, weights_B)
        return out * float("nan") if calls["n"] == 150 else out

    monkeypatch.setattr(learner_module, "td_loss", poisoned)  # the torch update
    monkeypatch.setattr(numpy_mlp, "td_loss", poisoned)  # the numpy update of MLPs on the CPU
    config = Config(
        total_steps=1000,
        checkpoint_every=200,
        learning_starts=100,
        batch_size=16,
        hidden_sizes=(16,),
        train_frequency=1,
        eval_episodes=1,
    )
    run_dir = tmp_path / "run"
    with pytest.raises(TrainingDiverged, match=r"the TD loss became nan at step 249 \(update 150\)"):
        train(config, run_dir=run_dir, progress=False, tensorboard=False)
    checkpoints = list_checkpoints(run_dir)
    assert [p.name for p in checkpoints] == ["step_000000000200"]
    assert all(
        torch.isfinite(t).all()
        for t in load_checkpoint(checkpoints[0]).states["learner"].values()
        if isinstance(t, torch.Tensor) and t.is_floating_point()
    )
    assert not (run_dir / "model.safetensors").exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_in_the_final_evaluation_stops_it_and_a_resume_plays_the_same_games(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sig: signal.Signals
) -> None:
    """Training done, the signal comes as the final evaluation starts: no half result, the checkpoint kept."""
    real_evaluate = training_module.evaluate_agent
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def signalled(*args: object, **kwargs: object) -> object:
        os.kill(os.getpid(), sig)  # delivered in this (main) thread before the call returns
        pytest.fail("the signal did not stop the evaluation")

    monkeypatch.setattr(training_module, "evaluate_agent", signalled)
    run_dir = tmp_path / "run"
    with pytest.raises(EvaluationInterrupted, match=f"{sig.name} in the final evaluation, after step 600") as stopped:
        train(SHORT, run_dir=run_dir, progress=False, tensorboard=False)
    assert stopped.value.step == 600 and stopped.value.signum == sig
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # the process's own handlers are back
    assert not (run_dir / "eval.json").exists() and not (run_dir / "summary.json").exists()
    assert load_checkpoint(list_checkpoints(run_dir)[0]).step == 600

    monkeypatch.setattr(training_module, "evaluate_agent", real_evaluate)
    resumed = train(resume=run_dir, progress=False, tensorboard=False)
    straight = train(SHORT, run_dir=tmp_path / "straight", progress=False, tensorboard=False)
    assert resumed.summary["updates"] == straight.summary["updates"] > 0
    assert resumed.eval is not None and straight.eval is not None
    assert resumed.eval.returns == straight.eval.returns  # the same network, the same seeded games
