"""Evaluation: run a policy for whole episodes on separate envs and report the returns.

Shape suffixes: ``B`` the envs still playing at a step (a batch for the network).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import gymnasium as gym
import numpy as np

from dueldqn import seeds
from dueldqn.files import CONFIG_FILE, EVAL_FILE, atomic_write, atomic_write_json

if TYPE_CHECKING:
    import torch

    from dueldqn.agent import Agent
    from dueldqn.config import Config
    from dueldqn.logger import RunLogger


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
    act_masked: Callable[[np.ndarray, np.ndarray], int] | None = None,
    action_mask: str = "off",
) -> EvalResult:
    """Play ``episodes`` whole episodes with ``act(obs) -> action`` and collect their returns.

    The env is reset with ``seed`` once, then continues its own random stream, so the episodes
    differ but the evaluation is reproducible. An episode ends on termination or truncation
    (the env's time limit). ``on_frame`` receives ``env.render()`` after each step (videos).
    With ``action_mask`` ``auto`` or ``on`` (:mod:`dueldqn.envs.masks`) and an env that gives masks,
    ``act_masked(obs, mask_A) -> action`` acts instead of ``act``, with the legal actions of ``obs``.
    """
    from dueldqn.envs.masks import env_mask, find_source, resolve_source

    if episodes < 1:
        raise ValueError(f"episodes must be a positive number, got {episodes}")
    returns: list[float] = []
    lengths: list[int] = []
    obs, info = env.reset(seed=seed)
    source = None
    if action_mask != "off" and act_masked is not None:
        name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        source = resolve_source(action_mask, find_source(env, info), name)
    steps = 0
    while len(returns) < episodes:
        episode_return, length = 0.0, 0
        if on_frame is not None:
            on_frame(env.render())  # type: ignore[arg-type]
        while True:
            if source is None:
                action = act(obs)
            else:
                assert act_masked is not None
                mask_A = env_mask(
                    env,
                    info,
                    source,
                    int(env.action_space.n),  # type: ignore[attr-defined]
                    where=f"{name} at evaluation step {steps}",
                )
                action = act_masked(obs, mask_A)
            obs, reward, terminated, truncated, info = env.step(action)
            steps += 1
            episode_return += float(reward)
            length += 1
            if on_frame is not None:
                on_frame(env.render())  # type: ignore[arg-type]
            if terminated or truncated:
                break
        returns.append(episode_return)
        lengths.append(length)
        obs, info = env.reset()
    return EvalResult(returns, lengths)


def episode_quotas(episodes: int, num_envs: int) -> list[int]:
    """How many episodes each of ``num_envs`` envs plays so that they play ``episodes`` in all.

    Env ``i`` plays ``episodes // num_envs`` episodes, one more if ``i < episodes % num_envs``.
    A fixed quota per env, decided before any episode is played, keeps the evaluation unbiased:
    taking the first ``episodes`` episodes to *finish* would favour short ones.
    """
    if episodes < 1 or num_envs < 1:
        raise ValueError(f"episodes and num_envs must be positive, got {episodes} and {num_envs}")
    return [episodes // num_envs + (i < episodes % num_envs) for i in range(num_envs)]


def evaluate_vector(
    envs: gym.vector.SyncVectorEnv | Sequence[gym.Env],
    act_batch: Callable[[np.ndarray], np.ndarray],
    *,
    episodes: int,
    seed: int,
) -> EvalResult:
    """Play ``episodes`` whole episodes over ``N`` envs at once, one network call per step for all of them.

    Each env plays a fixed quota of episodes (:func:`episode_quotas`), one after another; at each
    step the envs that have not finished their quota are stepped, their observations stacked
    into one batch ``obs_B`` for ``act_batch(obs_B) -> actions_B``. An env that has finished is
    no longer stepped, so N envs cost the sum of the episode lengths in env steps, as one env
    would, in about ``1/N`` of the network calls. Env ``i`` is reset with ``seed + i`` once,
    then continues its own random stream. The result lists env 0's episodes first, then env 1's,
    ...: the same envs, seed and policy give the same result whatever the episodes' lengths.

    Args:
        envs: the envs (a ``SyncVectorEnv``'s sub-envs are stepped one by one, bypassing its
            autoreset).
        act_batch: actions ``(B,)`` for a batch of observations ``(B, *obs_shape)``.
        episodes: number of episodes in all.
        seed: env ``i`` is reset with ``seed + i``.
    """
    env_list = list(envs.envs if isinstance(envs, gym.vector.SyncVectorEnv) else envs)
    quotas = episode_quotas(episodes, len(env_list))
    per_env: list[list[tuple[float, int]]] = [[] for _ in env_list]
    obs = [env.reset(seed=seed + i)[0] for i, env in enumerate(env_list)]
    returns = [0.0] * len(env_list)
    lengths = [0] * len(env_list)
    active = [i for i, quota in enumerate(quotas) if quota > 0]
    while active:
        actions_B = np.asarray(act_batch(np.stack([obs[i] for i in active])))
        if actions_B.shape != (len(active),):
            raise ValueError(f"act_batch returned shape {actions_B.shape}, expected ({len(active)},)")
        still_active = []
        for i, action in zip(active, actions_B.tolist(), strict=True):
            obs[i], reward, terminated, truncated, _ = env_list[i].step(action)
            returns[i] += float(reward)
            lengths[i] += 1
            if terminated or truncated:
                per_env[i].append((returns[i], lengths[i]))
                returns[i], lengths[i] = 0.0, 0
                if len(per_env[i]) == quotas[i]:
                    continue
                obs[i], _ = env_list[i].reset()
            still_active.append(i)
        active = still_active
    done = [episode for env_episodes in per_env for episode in env_episodes]
    return EvalResult([r for r, _ in done], [n for _, n in done])


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


def evaluate_agent(
    env_id: str, agent: Agent, *, episodes: int, epsilon: float, seed: int, action_mask: str = "auto"
) -> EvalResult:
    """Play ``episodes`` whole episodes of ``env_id`` with ``agent`` (greedy when ``epsilon`` is 0).

    Atari plays whole games (up to 27k steps each) batched over vector envs, one network call per
    step; other envs one episode after another on one env, with the env's action masks under
    ``action_mask`` (``auto``: where it gives them; Atari gives none).
    """
    from dueldqn.envs import EVAL_NUM_ENVS, make_eval_env, make_eval_vec_env, stacks_frames

    deterministic = epsilon == 0.0
    if stacks_frames(env_id):
        envs = make_eval_vec_env(env_id, min(episodes, EVAL_NUM_ENVS), seed)
        try:  # closed also when a signal stops the evaluation
            return evaluate_vector(
                envs, lambda obs_B: agent.predict(obs_B, deterministic=deterministic)[0], episodes=episodes, seed=seed
            )
        finally:
            envs.close()
    env = make_eval_env(env_id, seed=seed)
    try:
        return evaluate(
            env,
            lambda obs: int(agent.predict(obs, deterministic=deterministic)[0]),
            episodes=episodes,
            seed=seed,
            action_mask=action_mask,
            act_masked=lambda obs, mask: int(agent.predict(obs, deterministic=deterministic, action_mask=mask)[0]),
        )
    finally:
        env.close()


class TrainingEvaluation:
    """Evaluations during training, for any executor: every ``config.eval_every`` env steps, play
    ``config.eval_episodes`` episodes with the network as it is (greedy unless ``eval_epsilon``).

    Each evaluation resets its env with the same seed, ``config.seed + seeds.TRAINING_EVAL`` (the final
    evaluation uses ``seed + seeds.FINAL_EVAL``), so that evaluations compare networks on the same start states and the
    final one is played on others. It writes an ``eval`` row to ``metrics.csv`` and TensorBoard and
    touches none of the training's random state: a local run takes the same steps with or without
    evaluations (and resumes as exactly). A call returns the evaluation's result; where
    :meth:`reached` says its mean return reached ``stop_return``, the loop records the step in its
    state (``return_reached_at``) and stops there (RLlib's stop criterion), and a resumed run that
    had stopped stays stopped.

    Args:
        config: the run's config.
        q_net: the online network (read at each evaluation in eval mode, so a noisy one plays with its mean
            weights; its mode is restored after).
        raw_space: the env's own observation space (the agent encodes it as in training).
        n_actions: number of discrete actions.
        logger: the run's logger.
        step: the env step the loop starts from (0, or a resumed checkpoint's).
    """

    def __init__(
        self, config: Config, q_net: torch.nn.Module, raw_space: gym.Space, n_actions: int, logger: RunLogger, step: int
    ) -> None:
        if config.eval_every < 1:
            raise ValueError(f"TrainingEvaluation needs eval_every >= 1; got {config.eval_every}")
        self.config, self.q_net, self.raw_space, self.n_actions = config, q_net, raw_space, n_actions
        self.logger = logger
        self.next_step = (step // config.eval_every + 1) * config.eval_every

    def due(self, steps: int) -> bool:
        """Whether an evaluation is due at ``steps`` env steps (the first step at or past a multiple of eval_every)."""
        return steps >= self.next_step

    def reached(self, result: EvalResult) -> bool:
        """Whether ``result``'s mean return reached ``stop_return`` (never without one)."""
        return self.config.stop_return is not None and result.mean >= self.config.stop_return

    def __call__(self, steps: int) -> EvalResult:
        """Evaluate now, log the row, schedule the next one; returns the result."""
        from dueldqn.agent import Agent

        config = self.config
        agent = Agent(
            self.q_net,
            self.raw_space,
            self.n_actions,
            epsilon=config.eval_epsilon,
            seed=config.seed + seeds.TRAINING_EVAL_POLICY,
        )
        training = self.q_net.training
        self.q_net.eval()  # NoisyLinear layers: the mean weights
        try:
            result = evaluate_agent(
                config.env_id,
                agent,
                episodes=config.eval_episodes,
                epsilon=config.eval_epsilon,
                seed=config.seed + seeds.TRAINING_EVAL,
                action_mask=config.action_mask,
            )
        finally:
            self.q_net.train(training)
        self.logger.evaluation(steps, len(result.returns), result.mean, float(np.mean(result.lengths)))
        self.next_step = (steps // config.eval_every + 1) * config.eval_every
        return result


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
    from dueldqn.device import resolve_device
    from dueldqn.envs import make_eval_env

    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise ValueError(f"{run_dir} has no {CONFIG_FILE}; expected a run directory written by 'dueldqn train'")
    config = load_config(run_dir / CONFIG_FILE)
    epsilon = config.eval_epsilon if epsilon is None else epsilon
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
    seed = config.seed + seeds.FINAL_EVAL if seed is None else seed
    agent = Agent.load(run_dir, device=str(resolve_device(device)), epsilon=epsilon, seed=seed)

    result = evaluate_agent(
        config.env_id, agent, episodes=episodes, epsilon=epsilon, seed=seed, action_mask=config.action_mask
    )
    written = [run_dir / EVAL_FILE]
    atomic_write_json(written[0], {"epsilon": epsilon, "seed": seed, **result.to_dict()})
    if video:
        frames: list[np.ndarray] = []
        env = make_eval_env(config.env_id, seed=seed, render_mode="rgb_array")
        deterministic = epsilon == 0.0
        evaluate(
            env,
            lambda obs: int(agent.predict(obs, deterministic=deterministic)[0]),
            episodes=1,
            seed=seed,
            on_frame=frames.append,
            action_mask=config.action_mask,
            act_masked=lambda obs, mask: int(agent.predict(obs, deterministic=deterministic, action_mask=mask)[0]),
        )
        fps = int(env.metadata.get("render_fps") or 30)
        env.close()
        written.append(_write_video(run_dir / "video", frames, fps))
    return result, written
