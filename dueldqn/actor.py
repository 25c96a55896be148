"""The actor: the behaviour policy ``b``, epsilon-greedy with respect to a Q-network it reads and never trains.

    A_t ~ b(. | S_t):  a uniformly random action with probability epsilon, else argmax_a Q(S_t, a)

One uniform number per env and step decides both (:func:`dueldqn.exploration.epsilon_greedy_actions`);
the numbers are a function of the seed and the step alone (:class:`~dueldqn.exploration.ExplorationDraws`),
so a resumed run explores as the uninterrupted one did with nothing saved. With an action mask
(:mod:`dueldqn.envs.masks`) both the random and the greedy action range over the legal actions,
on the numpy path as on torch's. A small MLP on the CPU
acts through numpy (:func:`dueldqn.numpy_mlp.numpy_greedy`, views of the same weights); any other
network through torch. The network is shared with the :class:`~dueldqn.learner.Learner` in one
process: the actor always acts with the newest weights. A noisy network
(:class:`~dueldqn.networks.NoisyLinear`) gets new noise each time the actor runs it (each act step on
which some env exploits), drawn from the generator it is given.
"""

from __future__ import annotations

import numpy as np
import torch

from dueldqn.checkpoint import StateDict
from dueldqn.exploration import ExplorationDraws, epsilon_greedy_actions, legal_rows
from dueldqn.networks import reset_noise
from dueldqn.numpy_mlp import numpy_greedy
from dueldqn.tensors import Weights, as_network_input


class Actor:
    """Epsilon-greedy actions ``(N,)`` for ``N`` envs from ``q_net``.

    Args:
        q_net: the online network (read only).
        n_actions: the number of discrete actions.
        draws: the exploration draws, one uniform per env and vector step.
        device: where ``q_net`` is.
        numpy_mlp: act through numpy where the network allows it (a CPU float32 MLP with a plain head).
        noise: a noisy network's noise generator: new noise before each greedy action (``None``: none drawn).
    """

    def __init__(
        self,
        q_net: torch.nn.Module,
        n_actions: int,
        *,
        draws: ExplorationDraws,
        device: torch.device,
        numpy_mlp: bool = True,
        noise: torch.Generator | None = None,
    ) -> None:
        self.q_net, self.n_actions, self.draws, self.device = q_net, n_actions, draws, device
        self.noise = noise
        self._numpy_mlp_greedy = numpy_greedy(q_net) if numpy_mlp else None

    def greedy(self, obs_NO: np.ndarray, mask_NA: np.ndarray | None = None) -> np.ndarray:
        """``argmax_a Q(s, a)`` for each row of ``obs_NO``, over the legal actions of ``mask_NA`` if given: ``(N,)``."""
        legal_NA = None if mask_NA is None else legal_rows(mask_NA)
        if self._numpy_mlp_greedy is not None:
            return self._numpy_mlp_greedy(obs_NO, legal_NA)
        if self.noise is not None:
            reset_noise(self.q_net, self.noise)
        with torch.inference_mode():
            q_NA = self.q_net(as_network_input(obs_NO, self.device))
            if legal_NA is not None:
                q_NA = q_NA.masked_fill(~torch.from_numpy(legal_NA).to(q_NA.device), -torch.inf)
            return q_NA.argmax(dim=1).cpu().numpy()

    def act(
        self, obs_NO: np.ndarray, epsilon: float | np.ndarray, iteration: int, mask_NA: np.ndarray | None = None
    ) -> np.ndarray:
        """The behaviour policy's actions at vector step ``iteration``; the network runs only if some env exploits.

        ``epsilon`` is one rate, or ``(N,)`` rates, one per env (Ape-X's runners). ``mask_NA`` (bool ``(N, A)``,
        True where legal): explore and exploit over the legal actions only (a row with none, a terminal state
        whose action the autoreset ignores, as if all were legal).
        """
        return epsilon_greedy_actions(
            lambda: self.greedy(obs_NO, mask_NA), self.draws(iteration), epsilon, self.n_actions, mask_NA
        )

    def state_dict(self) -> StateDict:
        """Nothing: the draws are a function of (seed, step) and the weights are the learner's."""
        return {}

    def load_state_dict(self, state: StateDict) -> None:
        """Nothing to load (see :meth:`state_dict`)."""

    def set_weights(self, weights: Weights) -> None:
        """Copy ``weights`` into the network in place (the numpy_mlp path reads views of the same tensors)."""
        state = {name: torch.from_numpy(value) for name, value in weights.params.items()}
        self.q_net.load_state_dict(state)

    def q_values(self, obs_NO: np.ndarray) -> np.ndarray:
        """``Q(s, .)`` for each row of ``obs_NO``: ``(N, A)`` float32 (Ape-X runners' initial priorities)."""
        with torch.inference_mode():
            return self.q_net(as_network_input(obs_NO, self.device)).float().cpu().numpy()
