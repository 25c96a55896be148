"""Evaluation: run a policy for whole episodes on a separate env and report the returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gymnasium as gym
import numpy as np

from dueldqn.checkpoint import atomic_write, atomic_write_json


@dataclass(frozen=True)
class EvalResult:
    """Returns and lengths of the evaluation episodes."""

    returns: list[float]
    lengths: list[int]

    @property
    def mean(self) -> float:
        """Mean episode return."""
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        """Standard deviation of the episode returns (population)."""
        return float(np.std(self.returns))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready summary."""
        return {
            "episodes": len(self.returns),
            "mean_return": self.mean,
            "std_return": self.std,
            "returns": self.returns,
            "lengths": self.lengths,
        }


def evaluate(
    env: gym.Env,
    act: Callable[[np.ndarray], int],
    *,
    episodes: int,
    seed: int,
    on_frame: Callable[[np.ndarray], None] | None = None,
) -> EvalResult:
    """Play ``episodes`` whole episodes with ``act(obs) -> action`` and collect their returns.

    The env is reset with ``seed`` once, then continues its own random stream, so the episodes
    differ but the evaluation is reproducible. An episode ends on termination or truncation
    (the env's time limit). ``on_frame`` receives ``env.render()`` after each step (videos).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be a positive number, got {episodes}")
    returns: list[float] = []
    lengths: list[int] = []
    obs, _ = env.reset(seed=seed)
    while len(returns) < episodes:
        episode_return, length = 0.0, 0
        if on_frame is not None:
            on_frame(env.render())  # type: ignore[arg-type]
        while True:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            episode_return += float(reward)
            length += 1
            if on_frame is not None:
                on_frame(env.render())  # type: ignore[arg-type]
            if terminated or truncated:
                break
        returns.append(episode_return)
        lengths.append(length)
        obs, _ = env.reset()
    return EvalResult(returns, lengths)


def _write_video(path_stem: Path, frames: list[np.ndarray], fps: int) -> Path:
    """Write ``frames`` as mp4 when imageio with ffmpeg is installed (the video extra), else as a GIF."""
    try:
        import imageio.v2 as imageio

        path = path_stem.with_suffix(".mp4")
        atomic_write(path, lambda f: imageio.mimwrite(f, frames, format="FFMPEG", fps=fps, macro_block_size=1))
        return path
    except (ImportError, ValueError, RuntimeError):
        from PIL import Image

        path = path_stem.with_suffix(".gif")
        images = [Image.fromarray(frame) for frame in frames]
        atomic_write(
            path,
            lambda f: images[0].save(
                f, format="GIF", save_all=True, append_images=images[1:], duration=1000 // fps, loop=0
            ),
        )
        return path


def evaluate_run(
    run_dir: Path,
    *,
    episodes: int = 20,
    epsilon: float | None = None,
    seed: int | None = None,
    device: str = "cpu",
    video: bool = False,
) -> tuple[EvalResult, list[Path]]:
    """Evaluate the model saved in ``run_dir``; write ``eval.json`` (and a video) next to it.

    Returns the result and the paths written.
    """
    from dueldqn.agent import Agent
    from dueldqn.config import load_config
    from dueldqn.envs import make_eval_env
    from dueldqn.executors.session import CONFIG_FILE, resolve_device

    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise ValueError(f"{run_dir} has no {CONFIG_FILE}; expected a run directory written by 'dueldqn train'")
    config = load_config(run_dir / CONFIG_FILE)
    epsilon = config.eval_epsilon if epsilon is None else epsilon
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
    seed = config.seed + 10_000 if seed is None else seed
    agent = Agent.load(run_dir, device=str(resolve_device(device)), epsilon=epsilon, seed=seed)

    def act(obs: np.ndarray) -> int:
        return int(agent.predict(obs, deterministic=epsilon == 0.0)[0])

    env = make_eval_env(config.env_id, seed=seed)
    result = evaluate(env, act, episodes=episodes, seed=seed)
    env.close()
    written = [run_dir / "eval.json"]
    atomic_write_json(written[0], {"epsilon": epsilon, "seed": seed, **result.to_dict()})
    if video:
        frames: list[np.ndarray] = []
        env = make_eval_env(config.env_id, seed=seed, render_mode="rgb_array")
        evaluate(env, act, episodes=1, seed=seed, on_frame=frames.append)
        fps = int(env.metadata.get("render_fps") or 30)
        env.close()
        written.append(_write_video(run_dir / "video", frames, fps))
    return result, written
