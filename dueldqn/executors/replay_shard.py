"""Ape-X's replay shard: one prioritized replay fed by the chunks of its env runners (no Ray import).

Shard ``s`` of ``S`` holds the envs of runners ``s, s + S, s + 2S, ...``: ``M K`` streams for its
``M`` runners of ``K`` envs, runner ``r``'s env ``k`` being stream ``(r // S) K + k``. It stores a
chunk's raw one-step rows one vector step at a time in stream order, so the storage's per-stream
links fold n-step returns at sampling time exactly as in the local loop. When a runner starts a
new life (a restart) its streams are cut: the last row of the dead life's unfinished episode gets
no successor from the new one. The learner draws batches (:meth:`ReplayShard.sample_many`) and
sends back ``|delta|`` (:meth:`ReplayShard.update_priorities`), whose stale tickets the
:class:`~dueldqn.replay.PrioritizedReplay` drops (a slot rewritten in between keeps its new
transition's priority).

Shape suffixes: ``T`` vector steps of a chunk, ``K`` envs of a runner, ``N`` streams of the shard.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dueldqn.build import build_replay, build_storage
from dueldqn.config import Config
from dueldqn.executors.env_runner import Chunk, FrameChunk, actor_priorities, unpack_frames
from dueldqn.replay import Batch, PrioritizedReplay, ReplayBuffer
from dueldqn.seeds import shard_rng


def runners_of_shard(shard: int, num_shards: int, num_runners: int) -> list[int]:
    """The runners that write to ``shard``: ``shard, shard + S, ...``."""
    return list(range(shard, num_runners, num_shards))


class ReplayShard:
    """Shard ``index`` of ``config.replay_shards``: prioritized (or uniform) replay of its runners' envs.

    Args:
        config: replay capacity (split evenly over the shards), n-step, gamma, prioritization.
        index: this shard's index ``s``.
        obs_shape: one observation's shape.
        obs_dtype: one observation's dtype.
        frames: Atari's stacked frames (each frame stored once, :class:`~dueldqn.replay.frames.FrameReplayBuffer`).
        record_ids: keep every ingested transition id (tests check exactly-once ingestion).
        mask_actions: store each row's ``s'`` action mask of this many actions (0: the run uses no masks).
    """

    def __init__(
        self,
        config: Config,
        *,
        index: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype | type,
        frames: bool = False,
        record_ids: bool = False,
        mask_actions: int = 0,
    ) -> None:
        self.config, self.index = config, index
        self.runners = runners_of_shard(index, config.replay_shards, config.num_env_runners)
        K = config.envs_per_runner
        N = self.num_streams = len(self.runners) * K
        capacity = max(config.buffer_size // config.replay_shards, config.batch_size)
        self.storage = build_storage(
            config,
            obs_shape,
            np.dtype(obs_dtype),
            frames=frames,
            num_envs=N,
            capacity=capacity,
            mask_actions=mask_actions,
        )
        self.replay = build_replay(config, self.storage)
        self.rng = shard_rng(config.seed, index)
        # One vector step of all N streams, reused: a chunk fills its runner's K rows, the rest stay invalid.
        self._obs_NO = np.zeros((N, *obs_shape), dtype=obs_dtype)
        self._next_obs_NO = np.zeros_like(self._obs_NO)
        self._actions_N = np.zeros(N, dtype=np.int64)
        self._rewards_N = np.zeros(N, dtype=np.float32)
        self._terminated_N = np.zeros(N, dtype=bool)
        self._truncated_N = np.zeros(N, dtype=bool)
        self._td_abs_N = np.zeros(N)
        self._next_mask_NA = np.zeros((N, mask_actions), dtype=bool) if mask_actions else None
        self.ingested = 0  # transitions stored
        self.sampled = 0  # transitions drawn by the learner
        self.chunks: dict[tuple[int, int], int] = {}  # (runner, incarnation) -> chunks taken (the next seq)
        self.record_ids = record_ids
        self.runner_priorities = actor_priorities(config)  # else new rows take the maximum priority
        self.ids: list[np.ndarray] = []  # (M, 3) int64 rows (runner, incarnation, id) when record_ids

    def __len__(self) -> int:
        return len(self.replay)

    def add_chunk(self, chunk: Chunk | FrameChunk) -> int:
        """Store the valid rows of ``chunk`` step by step; returns how many were stored.

        A :class:`~dueldqn.executors.env_runner.FrameChunk` (Atari's frames, each sent once) is
        unpacked first.

        Raises:
            ValueError: for a runner that does not write here, or a chunk out of sequence (a lost
                or repeated chunk would break the streams' n-step links).
        """
        chunk = unpack_frames(chunk)
        if (chunk.next_mask_TKA is None) != (self._next_mask_NA is None):
            sent = "without" if chunk.next_mask_TKA is None else "with"
            raise ValueError(
                f"runner {chunk.runner} sent a chunk {sent} action masks to a shard whose run "
                f"{'uses' if self._next_mask_NA is not None else 'uses no'} masks"
            )
        if chunk.runner not in self.runners:
            raise ValueError(
                f"runner {chunk.runner} writes to shard {chunk.runner % self.config.replay_shards}, not {self.index}"
            )
        life = (chunk.runner, chunk.incarnation)
        expected = self.chunks.get(life, 0)
        if chunk.seq != expected:
            raise ValueError(
                f"runner {chunk.runner} (life {chunk.incarnation}) sent chunk {chunk.seq}, expected {expected}"
            )
        K = chunk.actions_TK.shape[1]
        first = self.runners.index(chunk.runner) * K
        cols = slice(first, first + K)
        if expected == 0 and isinstance(self.storage, ReplayBuffer):  # a new life: cut its streams' links
            self.storage.open_N[cols] = -1
        self.chunks[life] = expected + 1
        if isinstance(self.storage, ReplayBuffer) and self.storage.n_step == 1:  # no stream links: all rows at once
            self._add_rows(chunk)
        else:
            self._add_steps(chunk, cols)
        stored = chunk.transitions
        self.ingested += stored
        if self.record_ids:
            ids_M = chunk.ids_TK[chunk.valid_TK]
            self.ids.append(
                np.stack([np.full_like(ids_M, chunk.runner), np.full_like(ids_M, chunk.incarnation), ids_M], axis=1)
            )
        return stored

    def _add_rows(self, chunk: Chunk) -> None:
        """One-step rows without links: the chunk's ``T K`` rows in one ``add`` (order is kept, T-major)."""
        T, K = chunk.actions_TK.shape
        rows = (
            chunk.obs_TKO.reshape(T * K, *chunk.obs_TKO.shape[2:]),
            chunk.actions_TK.ravel(),
            chunk.rewards_TK.ravel(),
            chunk.next_obs_TKO.reshape(T * K, *chunk.obs_TKO.shape[2:]),
            chunk.terminated_TK.ravel(),
            chunk.truncated_TK.ravel(),
            chunk.valid_TK.ravel(),
        )
        masks = {} if chunk.next_mask_TKA is None else {"next_mask_N": chunk.next_mask_TKA.reshape(T * K, -1)}
        if isinstance(self.replay, PrioritizedReplay) and self.runner_priorities:
            self.replay.add(*rows, td_abs_N=chunk.td_abs_TK.ravel(), **masks)
        else:
            self.replay.add(*rows, **masks)

    def _add_steps(self, chunk: Chunk, cols: slice) -> None:
        """One vector step at a time, the runner's rows among all streams: the storage links each stream."""
        valid_N = np.zeros(self.num_streams, dtype=bool)
        for t in range(len(chunk.actions_TK)):
            valid_N[cols] = chunk.valid_TK[t]
            if not valid_N[cols].any():
                continue
            self._obs_NO[cols], self._next_obs_NO[cols] = chunk.obs_TKO[t], chunk.next_obs_TKO[t]
            self._actions_N[cols], self._rewards_N[cols] = chunk.actions_TK[t], chunk.rewards_TK[t]
            self._terminated_N[cols], self._truncated_N[cols] = chunk.terminated_TK[t], chunk.truncated_TK[t]
            self._td_abs_N[cols] = chunk.td_abs_TK[t]
            rows = (
                self._obs_NO,
                self._actions_N,
                self._rewards_N,
                self._next_obs_NO,
                self._terminated_N,
                self._truncated_N,
                valid_N,
            )
            masks = {}
            if self._next_mask_NA is not None and chunk.next_mask_TKA is not None:
                self._next_mask_NA[cols] = chunk.next_mask_TKA[t]
                masks = {"next_mask_N": self._next_mask_NA}
            if (
                isinstance(self.replay, PrioritizedReplay)
                and isinstance(self.storage, ReplayBuffer)
                and self.runner_priorities
            ):
                self.replay.add(*rows, td_abs_N=self._td_abs_N, **masks)
            else:  # uniform; frames, whose slots do not map one to one onto the rows; or C51: the max priority
                self.replay.add(*rows, **masks)

    def sample_many(
        self, count: int, batch_size: int, beta: float, priorities: tuple[np.ndarray, np.ndarray] | None = None
    ) -> list[Batch] | None:
        """``count`` batches (prioritized, or uniform without ``config.prioritized``); None before one fits.

        ``priorities``: ``(indices, |delta|)`` of earlier batches, applied first (one call instead of two).
        """
        if priorities is not None:
            self.update_priorities(*priorities)
        if not self.replay.can_sample(batch_size):
            return None
        self.sampled += count * batch_size
        return [self.replay.sample(batch_size, self.rng, beta=beta) for _ in range(count)]

    def update_priorities(self, indices_B: np.ndarray, td_abs_B: np.ndarray) -> None:
        """``p_i = (|delta_i| + eps)^alpha`` for the tickets of a sampled batch (stale ones are dropped)."""
        self.replay.update_priorities(indices_B, td_abs_B)

    def stats(self) -> dict[str, Any]:
        """Size and counters; with ``record_ids``, every ingested id as an ``(M, 3)`` array."""
        out: dict[str, Any] = {
            "shard": self.index,
            "size": len(self),
            "ingested": self.ingested,
            "sampled": self.sampled,
            "lives": len(self.chunks),
        }
        if self.record_ids:
            out["ids"] = np.concatenate(self.ids) if self.ids else np.zeros((0, 3), dtype=np.int64)
        return out

    def state_dict(self) -> dict[str, np.ndarray]:
        """The replay (storage, priorities) and the shard's counters, as arrays (checkpoint's ``replay.npz``)."""
        state = self.replay.state_dict()
        state["counters"] = np.array([self.ingested, self.sampled], dtype=np.int64)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore :meth:`state_dict`; runners start new lives on resume, so every stream is cut."""
        self.replay.load_state_dict({k: v for k, v in state.items() if k != "counters"})
        self.ingested, self.sampled = (int(x) for x in state["counters"])
        if isinstance(self.storage, ReplayBuffer):
            self.storage.open_N[:] = -1
