"""Proportional prioritized experience replay (Schaul et al., 2016) over either replay storage.

Transition ``i`` is sampled with probability

    P(i) = p_i / sum_k p_k,    p_i = (|delta_i| + eps)^alpha,

where ``delta_i`` is its last TD error, and the update that uses it is weighted by

    w_i = (N P(i))^-beta / max_j (N P(j))^-beta = (p_i / min_j p_j)^-beta,

``N`` the number of stored transitions. The max runs over every stored transition, not only the
batch (as in OpenAI baselines, cpprb and TorchRL): it is read off the :class:`SumTree`'s min tree
as ``min_j p_j``, so the weights are at most 1 and do not depend on what else was drawn. A new
transition gets the largest priority seen so far (1.0 at first), so it is replayed at least once
soon. ``beta`` is annealed by the caller (0.4 -> 1 in the paper).

The storage (:class:`~dueldqn.replay.ReplayBuffer` or :class:`~dueldqn.replay.FrameReplayBuffer`)
keeps the transitions; this class keeps one priority per storage slot in a :class:`SumTree`.
Slots that hold no transition (never written, the frame replay's lead slots and the slots that
left its sampleable window) have priority 0 and are never drawn. ``add`` reports which slots it
changed (:class:`~dueldqn.replay.SlotChanges`) and ``gather`` rebuilds a batch at given slots.

Stale updates: ``Batch.indices`` are tickets ``generation * num_slots + slot``, with a per-slot
generation bumped at every change of the slot (a new transition, or losing one). A priority
update whose ticket's generation is no longer the slot's is dropped, so a TD error never lands on
the transition that overwrote the one it was computed for (which matters once envs keep writing
between a sample and its update, as in Ape-X).

Shape suffixes: ``B`` batch, ``S`` storage slots.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from dueldqn.replay.batch import Batch
from dueldqn.replay.sum_tree import SumTree

if TYPE_CHECKING:
    from dueldqn.replay.frames import FrameReplayBuffer
    from dueldqn.replay.uniform import ReplayBuffer


class PrioritizedReplay:
    """Proportional prioritized replay over ``storage``; the module docstring gives the maths.

    Args:
        storage: where the transitions live; it may already hold some (they get priority 1).
        alpha: how much prioritization is used, ``p_i = (|delta_i| + eps)^alpha`` (0: uniform).
        eps: keeps a transition with a zero TD error drawable.
    """

    def __init__(self, storage: ReplayBuffer | FrameReplayBuffer, *, alpha: float, eps: float = 1e-6) -> None:
        if alpha < 0 or not eps > 0:
            raise ValueError(f"PrioritizedReplay needs alpha >= 0 and eps > 0, got alpha {alpha} and eps {eps}")
        self.storage = storage
        self.alpha = float(alpha)
        self.eps = float(eps)
        self.num_slots = storage.num_slots
        self._tree = SumTree(self.num_slots)
        # Priorities set by add and update_priorities and not yet in the tree, in order: applied in one
        # vectorised update when the tree is next read. The tree is a pure function of its leaves, so
        # deferring changes nothing but the cost: one walk up the tree per sampled batch instead of
        # one per env step and one per priority update.
        self._pending: list[tuple[np.ndarray, float | np.ndarray]] = []
        self.generation_S = np.zeros(self.num_slots, dtype=np.int64)  # changes of each slot so far
        self.max_priority = 1.0  # largest p_i seen so far: what a new transition gets
        held = storage.valid_indices()
        self._tree.update(held, np.full(len(held), self.max_priority))

    def __len__(self) -> int:
        return len(self.storage)

    def can_sample(self, min_size: int) -> bool:
        """Whether at least ``min_size`` transitions are stored (the warm-up rule)."""
        return self.storage.can_sample(min_size)

    def add(
        self,
        obs_N: np.ndarray,
        actions_N: np.ndarray,
        rewards_N: np.ndarray,
        next_obs_N: np.ndarray,
        terminated_N: np.ndarray,
        truncated_N: np.ndarray,
        valid_N: np.ndarray | None = None,
        td_abs_N: np.ndarray | None = None,
        *,
        next_mask_N: np.ndarray | None = None,
    ) -> None:
        """Store one step of ``N`` envs in the storage (same arguments); new transitions get the max priority.

        ``td_abs_N`` (``(N,)``, optional): initial ``|delta|`` per row, computed by whoever acted
        (Ape-X's env runners, with their copy of the network); new transitions then get
        ``(|delta_i| + eps)^alpha`` instead of the max priority. Rows where ``valid_N`` is False
        are ignored, as by the storage. ``next_mask_N``: the storage's action masks of ``s'``.
        """
        changes = self.storage.add(
            obs_N, actions_N, rewards_N, next_obs_N, terminated_N, truncated_N, valid_N, next_mask_N=next_mask_N
        )
        written, cleared = changes
        if len(cleared):  # cleared first, so that a slot in both gets its new transition's priority (last wins)
            self._pending.append((cleared, 0.0))
            self.generation_S[cleared] += 1
        if len(written):
            priority: float | np.ndarray = self.max_priority
            if td_abs_N is not None:
                td_abs_K = np.asarray(td_abs_N, dtype=np.float64)
                td_abs_K = td_abs_K if valid_N is None else td_abs_K[np.asarray(valid_N, dtype=bool)]
                if td_abs_K.shape != written.shape or not np.isfinite(td_abs_K).all() or (td_abs_K < 0).any():
                    raise ValueError(
                        f"add expects finite |TD errors| >= 0, one per stored row ({len(written)}); got {td_abs_K}"
                    )
                priority = (td_abs_K + self.eps) ** self.alpha
                self.max_priority = max(self.max_priority, float(priority.max()))
            self._pending.append((written, priority))
            self.generation_S[written] += 1

    @property
    def tree(self) -> SumTree:
        """The sum tree over the slots' priorities, with every pending change applied."""
        if self._pending:
            slots = np.concatenate([slots for slots, _ in self._pending])
            priorities = np.concatenate([np.broadcast_to(p, slots.shape) for slots, p in self._pending])
            self._pending.clear()
            self._tree.update(slots, priorities)
        return self._tree

    def sample(self, batch_size: int, rng: np.random.Generator, *, beta: float = 1.0) -> Batch:
        """Draw ``batch_size`` transitions with ``P(i) = p_i / sum_k p_k`` (stratified, with replacement).

        Returns the storage's :class:`Batch` with ``indices`` (``(B,)`` int64 tickets for
        :meth:`update_priorities`) and ``weights`` (``(B,)`` float32,
        ``w_i = (p_i / min_j p_j)^-beta``, normalised by the largest weight over all stored
        transitions).
        """
        if len(self) == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        tree = self.tree
        slots_B = tree.sample(batch_size, rng)
        priorities_B = tree.leaves[slots_B]
        weights_B = (priorities_B / tree.min_nonzero) ** -beta
        tickets_B = self.generation_S[slots_B] * self.num_slots + slots_B
        return self.storage.gather(slots_B)._replace(indices=tickets_B, weights=weights_B.astype(np.float32))

    def update_priorities(self, indices_B: np.ndarray | None, td_abs_B: Any) -> None:
        """Set ``p_i = (|delta_i| + eps)^alpha`` for the tickets ``indices_B`` from :meth:`sample`.

        ``td_abs_B``: an array, or a tensor on any device. Tickets whose slot changed since they were
        drawn are dropped (the module docstring says why); for a ticket repeated in the batch, the last
        one wins.

        Raises:
            ValueError: for a negative or non-finite TD error, arrays of different shapes, or no tickets.
        """
        if indices_B is None:
            raise ValueError("update_priorities expects the tickets of a batch this replay sampled, got None")
        if hasattr(td_abs_B, "detach"):  # a torch tensor, maybe on a GPU (replay imports no torch)
            td_abs_B = td_abs_B.detach().cpu().numpy()
        indices_B = np.asarray(indices_B, dtype=np.int64)
        td_abs_B = np.asarray(td_abs_B, dtype=np.float64)
        if indices_B.shape != td_abs_B.shape or indices_B.ndim != 1:
            raise ValueError(
                "update_priorities expects indices_B and td_abs_B of shape (B,), "
                f"got {indices_B.shape} and {td_abs_B.shape}"
            )
        if not np.isfinite(td_abs_B).all() or (td_abs_B < 0).any():
            raise ValueError(f"update_priorities expects finite |TD errors| >= 0, got {td_abs_B}")
        generation_B, slots_B = np.divmod(indices_B, self.num_slots)
        current_B = self.generation_S[slots_B] == generation_B
        if not current_B.any():
            return
        priorities_B = (td_abs_B[current_B] + self.eps) ** self.alpha
        self.max_priority = max(self.max_priority, float(priorities_B.max()))
        self._pending.append((slots_B[current_B], priorities_B))  # into the tree with the next adds, in order

    def state_dict(self) -> dict[str, np.ndarray]:
        """The storage's state (keys prefixed ``storage/``), the priorities, generations and max priority."""
        state = {f"storage/{key}": value for key, value in self.storage.state_dict().items()}
        state["priorities"] = self.tree.state_dict()["leaves"]
        state["generation"] = self.generation_S.copy()
        state["max_priority_alpha_eps"] = np.array([self.max_priority, self.alpha, self.eps], dtype=np.float64)
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned; the tree is rebuilt bitwise from the priorities.

        Raises:
            ValueError: for a state of another slot count, alpha or eps (its priorities would
                mean something else).
        """
        max_priority, alpha, eps = (float(x) for x in state["max_priority_alpha_eps"])
        if (alpha, eps) != (self.alpha, self.eps) or state["generation"].shape != (self.num_slots,):
            raise ValueError(
                f"prioritized replay state is for alpha {alpha}, eps {eps} and {len(state['generation'])} slots; "
                f"this one has alpha {self.alpha}, eps {self.eps} and {self.num_slots} slots"
            )
        prefix = "storage/"
        self.storage.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
        self._pending.clear()
        self._tree.load_state_dict({"leaves": state["priorities"]})
        self.generation_S[:] = state["generation"]
        self.max_priority = max_priority
