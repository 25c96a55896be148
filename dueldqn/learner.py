"""The learner: the online and target Q-networks, AdamW, and the gradient step on the TD loss.

    theta <- theta - alpha grad 1/B sum_i w_i l(y_i - Q(S_i, A_i | theta))      (update)
    theta_targ <- tau theta + (1 - tau) theta_targ                               (sync)

with the targets ``y`` of :mod:`dueldqn.targets` and ``w_i`` prioritized replay's importance
weights (1 without it). A :class:`~dueldqn.networks.DistributionalQNetwork` learns C51's
cross-entropy ``-sum_j m_j log p_j(S_i, A_i)`` towards the projected target distribution ``m``
instead, and a noisy network gets new noise, online and target, before each update.

:class:`Learner` owns what changes the networks and nothing else: the
loop decides when to update and sync, the :class:`~dueldqn.actor` side only reads the online
network. On the CPU a small MLP learns through :mod:`dueldqn.numpy_mlp` (the same maths, about
2.5x faster) with :class:`~dueldqn.numpy_mlp.NumpyAdamW`, which spares the seconds a torch
optimizer's import costs; every other network through :func:`gradient_step` and
``torch.optim.AdamW``. Both keep the optimizer's state in torch's ``state_dict`` format.
"""

from __future__ import annotations

import copy

import torch

from dueldqn.augment import augment
from dueldqn.checkpoint import StateDict
from dueldqn.config import Config
from dueldqn.networks import DistributionalQNetwork, reset_noise
from dueldqn.numpy_mlp import NumpyAdamW, NumpyMLPUpdate, mlp_layers
from dueldqn.replay.batch import Batch
from dueldqn.targets import Update, categorical_loss, categorical_td_target, td_loss, td_target
from dueldqn.tensors import Weights, as_network_input, to_device


@torch.no_grad()
def update_target(target_net: torch.nn.Module, q_net: torch.nn.Module, tau: float = 1.0) -> None:
    """``theta_targ <- tau * theta + (1 - tau) * theta_targ``; ``tau=1`` copies exactly (a hard sync)."""
    target_params: list[torch.Tensor] = list(target_net.parameters())
    online_params: list[torch.Tensor] = list(q_net.parameters())
    if tau == 1.0:
        torch._foreach_copy_(target_params, online_params)
    else:
        torch._foreach_lerp_(target_params, online_params, tau)


def gradient_step(
    q_net: torch.nn.Module,
    target_net: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    *,
    config: Config,
    epsilon: float,
    device: torch.device,
    generator: torch.Generator,
) -> Update:
    """One AdamW step on the mean TD loss of ``batch``; returns the loss and ``|TD error|`` (detached, on ``device``).

    The batch's ``discounts`` (n-step) replace ``gamma``; its ``weights`` (prioritized replay) weight the loss;
    its ``next_mask`` (action masks) limits the targets to the legal actions of ``s'``.
    With ``config.augment`` the network sees DrQ's augmented ``s`` and ``s'`` (:func:`dueldqn.augment.augment`),
    drawn independently from ``generator``, ``s`` first.
    """
    if config.augment:  # on the device, straight from uint8: the scaling to [0, 1] rides on the intensity factor
        obs = augment(to_device(batch.obs, device), generator)
        next_obs = augment(to_device(batch.next_obs, device), generator)
    else:
        obs = as_network_input(batch.obs, device)
        next_obs = as_network_input(batch.next_obs, device)
    actions_B = to_device(batch.actions, device)
    rewards_B = to_device(batch.rewards, device)
    terminated_B = to_device(batch.terminated, device)
    gamma = config.gamma if batch.discounts is None else to_device(batch.discounts, device)
    weights_B = None if batch.weights is None else to_device(batch.weights, device)
    next_mask_BA = None if batch.next_mask is None else to_device(batch.next_mask, device)
    if isinstance(q_net, DistributionalQNetwork):  # C51: the priority is each transition's cross-entropy
        assert isinstance(target_net, DistributionalQNetwork)
        target_BZ = categorical_td_target(
            config.algo,
            rewards_B,
            terminated_B,
            next_obs,
            q_net.log_probs,
            target_net.log_probs,
            q_net.support_Z,
            gamma,
            epsilon,
            generator,
            next_mask_BA,
        )
        log_probs_BAZ = q_net.log_probs(obs)
        log_probs_sa_BZ = log_probs_BAZ[torch.arange(len(actions_B), device=device), actions_B]
        loss, priority_B = categorical_loss(log_probs_sa_BZ, target_BZ, weights_B)
    else:
        target_B = td_target(
            config.algo, rewards_B, terminated_B, next_obs, q_net, target_net, gamma, epsilon, generator, next_mask_BA
        )
        q_sa_B = q_net(obs).gather(1, actions_B.unsqueeze(1)).squeeze(1)
        loss = td_loss(q_sa_B, target_B, config.loss, weights_B)
        priority_B = (q_sa_B.detach() - target_B).abs()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(q_net.parameters(), config.max_grad_norm)
    optimizer.step()
    return Update(loss.detach(), priority_B)


class Learner:
    """The online network ``q_net``, its target copy and their optimizer, built from ``config``.

    Args:
        q_net: the online network, already on ``device`` (the learner trains it in place).
        config: algorithm, loss, gamma, AdamW settings, gradient clipping, ``numpy_mlp``.
        device: where the networks are.
        generator: draws Deep SARSA's ``A'`` and the augmentation (saved in checkpoints, so a resume is exact).
        noise_generator: a noisy network's noise (``config.noisy``); saved in checkpoints too. The actor
            may draw from the same generator: one process takes its draws in one order.

    With ``target_sync="polyak"`` and ``tau=1`` (a copy after every gradient step, DrQ's target) the
    target network *is* the online network: the same values at every update, without the copy.
    """

    def __init__(
        self,
        q_net: torch.nn.Module,
        config: Config,
        *,
        device: torch.device,
        generator: torch.Generator,
        noise_generator: torch.Generator | None = None,
    ) -> None:
        if config.noisy and noise_generator is None:
            raise ValueError("a noisy network (config.noisy) needs a noise_generator for the learner")
        self.noise_generator = noise_generator if config.noisy else None
        self.online = q_net
        if config.augment and not any(isinstance(m, torch.nn.Conv2d) for m in q_net.modules()):
            raise ValueError("augment (DrQ's image shifts) needs image observations and a convolutional network")
        self.target = q_net
        if not (config.target_sync == "polyak" and config.tau == 1.0):
            self.target = copy.deepcopy(q_net).requires_grad_(False)  # theta_targ <- theta; never touched by SGD
        self.config, self.device, self.generator = config, device, generator
        # The numpy path keeps AdamW's state itself: building a torch optimizer costs seconds of imports.
        self.optimizer: torch.optim.Optimizer | NumpyAdamW
        if config.numpy_mlp and mlp_layers(q_net) is not None:
            self.optimizer = NumpyAdamW(
                q_net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, eps=config.adam_eps
            )
        else:
            self.optimizer = torch.optim.AdamW(
                q_net.parameters(),
                lr=config.learning_rate,
                weight_decay=config.weight_decay,
                eps=config.adam_eps,
                fused=True,
            )
        self._numpy_mlp: NumpyMLPUpdate | None = None
        self.optimizer_loaded()
        self.version = 0  # updates applied so far (Ape-X stamps the weights it publishes with it)

    def optimizer_loaded(self) -> None:
        """Call after loading the optimizer's state (a resume): the numpy update takes over its moments."""
        config = self.config
        self._numpy_mlp = None
        if config.numpy_mlp:
            self._numpy_mlp = NumpyMLPUpdate.create(
                self.online,
                self.target,
                self.optimizer,
                algo=config.algo,
                gamma=config.gamma,
                loss=config.loss,
                max_grad_norm=config.max_grad_norm,
            )

    def update(self, batch: Batch, *, epsilon: float, lr: float) -> Update:
        """One AdamW step at learning rate ``lr`` on ``batch``; ``epsilon`` is the behaviour policy's (SARSA)."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.version += 1  # Ape-X: the weights' version is the number of updates applied
        if self.noise_generator is not None:  # new noise per update, online first, then target (Dopamine's order)
            reset_noise(self.online, self.noise_generator)
            if self.target is not self.online:
                reset_noise(self.target, self.noise_generator)
        if self._numpy_mlp is not None:
            return self._numpy_mlp.step(batch, epsilon=epsilon, generator=self.generator)
        assert isinstance(self.optimizer, torch.optim.Optimizer)
        return gradient_step(
            self.online,
            self.target,
            self.optimizer,
            batch,
            config=self.config,
            epsilon=epsilon,
            device=self.device,
            generator=self.generator,
        )

    def sync_target(self, tau: float = 1.0) -> None:
        """``theta_targ <- tau * theta + (1 - tau) * theta_targ`` (``tau = 1``: a hard copy)."""
        if self.target is not self.online:  # DrQ's target is the online network itself: nothing to copy
            update_target(self.target, self.online, tau)

    def state_dict(self) -> StateDict:
        """Both networks (one when the target is the online one), AdamW's moments and settings, the torch generator."""
        state: StateDict = {f"online.{k}": v for k, v in self.online.state_dict().items()}
        if self.target is not self.online:
            state |= {f"target.{k}": v for k, v in self.target.state_dict().items()}
        optim_state = self.optimizer.state_dict()
        for index, moments in optim_state["state"].items():
            for name, value in moments.items():
                state[f"optimizer.{index}.{name}"] = torch.as_tensor(value).clone()  # numpy_mlp shares one buffer
        state["generator"] = self.generator.get_state()
        if self.noise_generator is not None:
            state["noise_generator"] = self.noise_generator.get_state()
        state["optimizer_param_groups"] = optim_state["param_groups"]
        return state

    def load_state_dict(self, state: StateDict) -> None:
        """Load :meth:`state_dict`'s values; another network's state is a ``ValueError``."""
        groups: dict[str, dict[str, torch.Tensor]] = {"online": {}, "target": {}}
        moments: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in state.items():
            kind, _, name = key.partition(".")
            if kind in groups:
                groups[kind][name] = value
            elif kind == "optimizer":
                index, _, moment = name.partition(".")
                moments.setdefault(int(index), {})[moment] = value
        try:
            self.online.load_state_dict(groups["online"])
            if self.target is not self.online:
                self.target.load_state_dict(groups["target"])
            self.optimizer.load_state_dict({"state": moments, "param_groups": state["optimizer_param_groups"]})
        except (RuntimeError, KeyError, ValueError) as err:
            raise ValueError(f"the learner's state does not fit this network or optimizer: {err}") from err
        if isinstance(self.optimizer, torch.optim.Optimizer):
            # Loaded moments are contiguous; those of channels_last conv weights were not, and mixed layouts take
            # another elementwise kernel (other rounding): a resumed conv run drifted. Give them the params' layout.
            for param, moments_of_param in self.optimizer.state.items():
                for moment, value in moments_of_param.items():
                    if isinstance(value, torch.Tensor) and value.shape == param.shape:
                        moments_of_param[moment] = torch.empty_like(param).copy_(value)
        self.generator.set_state(state["generator"])
        if self.noise_generator is not None:
            if "noise_generator" not in state:
                raise ValueError("the learner's state holds no noise generator, which this noisy network needs")
            self.noise_generator.set_state(state["noise_generator"])
        self.optimizer_loaded()

    # Ape-X on Ray (dueldqn.executors.ray_apex): versioned numpy copies of the online weights.
    def get_weights(self) -> Weights:
        """A CPU numpy copy of the online network's weights, stamped with :attr:`version`."""
        params = {name: value.detach().cpu().numpy().copy() for name, value in self.online.state_dict().items()}
        return Weights(self.version, params)
