"""Small MLP Q-networks on the CPU through numpy: acting and the gradient step, same maths, less overhead.

For the MLPs of classic control (thousands of weights, batches of 32 to 256) torch spends most of
its time in per-operation overhead (dispatch, autograd nodes, module calls, optimizer
bookkeeping), not in arithmetic: acting costs about 25 us a step against 6 us of matrix products,
and one AdamW update about 550 us against under 200 us. This module does the same work in numpy
on views of the network's own parameters:

- :func:`numpy_greedy` computes ``argmax_a Q(s, a)`` for acting;
- :class:`NumpyMLPUpdate` does what :func:`dueldqn.learner.gradient_step` does (the target of
  :func:`dueldqn.targets.td_target`, the loss of :func:`dueldqn.targets.td_loss`, gradient-norm
  clipping as ``torch.nn.utils.clip_grad_norm_``, and ``torch.optim.AdamW``), with the backward
  pass written out by hand and AdamW's moments kept in the optimizer's own state.

Both read and write the torch tensors' memory, so target syncs, ``load_state_dict``, checkpoints
and :class:`dueldqn.agent.Agent` all see one network. ``tests/test_numpy_mlp.py`` checks them
against the torch code to float32 precision.

Shapes: ``B`` batch, ``A`` actions, ``D`` observation features, ``I`` / ``O`` a layer's input
and output features, ``P`` all parameters flattened.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import numpy as np
import torch

from dueldqn.networks import MLP, DuelingHead, QHead, QNetwork
from dueldqn.replay.batch import Batch
from dueldqn.targets import Update, td_loss, td_target

Layer = tuple[np.ndarray, np.ndarray]  # (weight_OI, bias_O): numpy views of an nn.Linear's parameters


def _mlp_linears(q_net: torch.nn.Module) -> tuple[list[torch.nn.Linear], list[torch.nn.Linear]] | None:
    """The encoder's ReLU layers and the head's layers (``[q]`` or ``[value, advantage]``) of a CPU
    float32 MLP Q-network, or ``None`` for any other network (distributional and noisy ones too)."""
    if not isinstance(q_net, QNetwork) or not isinstance(q_net.encoder, MLP):
        return None
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in q_net.parameters()):
        return None
    hidden = [m for m in q_net.encoder.net if isinstance(m, torch.nn.Linear)]
    head: list[torch.nn.Module]
    if isinstance(q_net.head, DuelingHead):
        head = [q_net.head.value, q_net.head.advantage]
    elif isinstance(q_net.head, QHead):
        head = [q_net.head.q]
    else:
        return None
    linears = [m for m in head if type(m) is torch.nn.Linear]  # a NoisyLinear head runs on torch
    return (hidden, linears) if len(linears) == len(head) else None


def mlp_layers(q_net: torch.nn.Module) -> tuple[list[Layer], list[Layer]] | None:
    """``(hidden, head)`` numpy views of an MLP Q-network's linear layers, or ``None`` for other networks.

    ``hidden`` are the ReLU layers of the encoder; ``head`` is ``[q]`` for a plain head and
    ``[value, advantage]`` for a dueling head. Only float32 networks on the CPU qualify.
    """
    linears = _mlp_linears(q_net)
    if linears is None:
        return None
    hidden, head = linears
    views = [[(m.weight.detach().numpy(), m.bias.detach().numpy()) for m in part] for part in (hidden, head)]
    return views[0], views[1]


def _features(hidden: list[Layer], x_BD: np.ndarray) -> list[np.ndarray]:
    """The input and every hidden layer's ReLU output: ``[x_BD, h1_BO, h2_BO, ...]``."""
    out = [x_BD]
    for weight_OI, bias_O in hidden:
        h_BO = out[-1] @ weight_OI.T
        h_BO += bias_O
        out.append(np.maximum(h_BO, 0.0, out=h_BO))
    return out


def _head(head: list[Layer], h_BF: np.ndarray) -> np.ndarray:
    """Q-values ``(B, A)`` from the last features: ``h W^T + b``, or ``V + (A - mean_a A)``."""
    if len(head) == 1:
        return h_BF @ head[0][0].T + head[0][1]
    (wv_1F, bv_1), (wa_AF, ba_A) = head
    a_BA = h_BF @ wa_AF.T + ba_A
    return (h_BF @ wv_1F.T + bv_1) + (a_BA - a_BA.mean(axis=1, keepdims=True))


def numpy_q_values(layers: tuple[list[Layer], list[Layer]], obs_BD: np.ndarray) -> np.ndarray:
    """Q-values ``(B, A)`` of an MLP Q-network given by :func:`mlp_layers`."""
    hidden, head = layers
    return _head(head, _features(hidden, obs_BD.astype(np.float32, copy=False))[-1])


class Greedy(Protocol):
    """Greedy actions ``(N,)`` of observations ``(N, D)``, the best legal one under an optional mask ``(N, A)``."""

    def __call__(self, obs_ND: np.ndarray, mask_NA: np.ndarray | None = None) -> np.ndarray: ...


def numpy_greedy(q_net: torch.nn.Module) -> Greedy | None:
    """Greedy actions ``(N,)`` of an MLP Q-network computed in numpy, or ``None`` for other networks.

    The function takes observations ``(N, D)`` and an optional action mask ``(N, A)`` (bool, True
    where legal, every row with a legal action): then the best legal action.

    The arrays are views of the parameters' own memory, so they follow every optimizer step,
    target copy and ``load_state_dict`` without copying.
    """
    layers = mlp_layers(q_net)
    if layers is None:
        return None
    hidden, head = layers
    # With a dueling head, argmax_a Q(s, a) = argmax_a A(s, a): V(s) and mean_a A(s, a) are the
    # same for every action, so only the advantage stream is needed to act.
    out_weight_AF, out_bias_A = head[-1]

    def greedy(obs_ND: np.ndarray, mask_NA: np.ndarray | None = None) -> np.ndarray:
        h_NF = _features(hidden, obs_ND.astype(np.float32, copy=False))[-1]
        score_NA = h_NF @ out_weight_AF.T + out_bias_A
        if mask_NA is not None:  # the best legal action: the same shift per row, so masking A masks Q
            score_NA = np.where(mask_NA, score_NA, -np.inf)
        return score_NA.argmax(axis=1)

    return greedy


class NumpyAdamW:
    """What :class:`NumpyMLPUpdate` needs of ``torch.optim.AdamW``, without building a torch optimizer.

    Creating any ``torch.optim`` optimizer imports ``torch._dynamo`` (2.5 to 3.7 s on a 2-core
    Xeon, a third of a CartPole run's wait outside its loop), and the numpy path uses none of it.
    This holds AdamW's hyperparameters in ``param_groups`` and its moments in ``state`` (keyed by
    parameter) as torch does, and its ``state_dict`` / ``load_state_dict`` read and write torch's
    format, so a checkpoint is the same whichever of the two wrote it. The step itself is
    :meth:`NumpyMLPUpdate.step`; ``lr`` in ``param_groups[0]`` is read at every step, as torch's.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        *,
        lr: float,
        weight_decay: float = 0.01,
        eps: float = 1e-8,
        betas: tuple[float, float] = (0.9, 0.999),
    ) -> None:
        # The keys and defaults of torch.optim.AdamW(fused=True)'s param group (tests compare them).
        self.param_groups: list[dict[str, Any]] = [
            {
                "lr": lr,
                "betas": betas,
                "eps": eps,
                "weight_decay": weight_decay,
                "amsgrad": False,
                "maximize": False,
                "foreach": None,
                "capturable": False,
                "differentiable": False,
                "fused": True,
                "decoupled_weight_decay": True,
                "params": list(params),
            }
        ]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {"step", "exp_avg", "exp_avg_sq"}}, "param_groups": [...]}`` as torch's."""
        params = self.param_groups[0]["params"]
        index = {id(p): i for i, p in enumerate(params)}
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        return {
            "state": {index[id(p)]: dict(moments) for p, moments in self.state.items()},
            "param_groups": [{**group, "params": list(range(len(params)))}],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Take hyperparameters and moments from a ``state_dict`` of this class or of ``torch.optim.AdamW``."""
        params = self.param_groups[0]["params"]
        groups = state_dict["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(params):
            raise ValueError(f"expected the state of one parameter group of {len(params)} tensors")
        state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        for index, moments in state_dict["state"].items():
            p = params[int(index)]
            if moments["exp_avg"].shape != p.shape or moments["exp_avg_sq"].shape != p.shape:
                raise ValueError(
                    f"optimizer state {index} has shape {tuple(moments['exp_avg'].shape)}, not {tuple(p.shape)}"
                )
            state[p] = {
                "step": torch.as_tensor(moments["step"], dtype=torch.float32).clone(),
                "exp_avg": moments["exp_avg"].to(p.dtype).clone(),
                "exp_avg_sq": moments["exp_avg_sq"].to(p.dtype).clone(),
            }
        self.state = state
        self.param_groups[0].update({k: v for k, v in groups[0].items() if k != "params"})


class NumpyMLPUpdate:
    """One AdamW step on the mean TD loss of a batch, for an MLP Q-network, in numpy.

    The same update as :func:`dueldqn.learner.gradient_step` (the torch reference):

    - target ``y_B`` from :func:`dueldqn.targets.td_target`, with the networks run in numpy;
    - ``L = 1/B sum_i l(Q(s_i, a_i) - y_i)``, ``l`` squared error or Huber (Smooth L1, beta 1),
      so ``dL/dQ(s_i, a_i) = 2 d_i / B`` or ``clip(d_i, -1, 1) / B``;
    - backward through the head (dueling: ``dL/dV = sum_a dL/dQ``, ``dL/dA = dL/dQ - mean_a
      dL/dQ``) and the ReLU layers (``dL/dpre = dL/dh * [h > 0]``);
    - the gradient scaled by ``min(1, max_norm / (||g||_2 + 1e-6))`` when clipping is on;
    - AdamW (Loshchilov and Hutter, 2019) as ``torch.optim.AdamW``: ``theta *= 1 - lr wd``;
      ``m <- beta1 m + (1 - beta1) g``; ``v <- beta2 v + (1 - beta2) g^2``;
      ``theta -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)``.

    Gradients and moments live in flat float32 buffers ``(P,)``; the optimizer's state tensors
    are views of them, so ``optimizer.state_dict()`` (checkpoints) always holds the live moments.
    Build it after any ``optimizer.load_state_dict`` (a resume): it takes the moments found there.
    Use :meth:`create`, which returns ``None`` where this does not apply.
    """

    def __init__(
        self,
        q_net: QNetwork,
        target_net: QNetwork,
        optimizer: torch.optim.Optimizer | NumpyAdamW,
        *,
        algo: str,
        gamma: float,
        loss: str,
        max_grad_norm: float,
    ) -> None:
        online, target, linears = mlp_layers(q_net), mlp_layers(target_net), _mlp_linears(q_net)
        if online is None or target is None or linears is None:
            raise ValueError("NumpyMLPUpdate needs float32 MLP Q-networks (QNetwork with an MLP encoder) on the CPU")
        self.online, self.target = online, target
        self.algo, self.gamma, self.loss, self.max_grad_norm = algo, gamma, loss, max_grad_norm
        self.group = optimizer.param_groups[0]
        self._online_q = self._q_values(online)  # the networks behind td_target, as torch callables
        self._target_q = self._q_values(target)
        params = list(q_net.parameters())
        sizes = [p.numel() for p in params]
        offsets = np.cumsum([0, *sizes])
        total = int(offsets[-1])
        self.grad_P = np.zeros(total, dtype=np.float32)
        self.exp_avg_P = np.zeros(total, dtype=np.float32)
        self.exp_avg_sq_P = np.zeros(total, dtype=np.float32)
        self.steps = np.zeros(len(params), dtype=np.float32)  # AdamW's per-parameter step counts
        self._scratch_P = np.zeros(total, dtype=np.float32)
        self._scratch2_P = np.zeros(total, dtype=np.float32)

        def view(flat_P: np.ndarray, i: int) -> np.ndarray:
            return flat_P[offsets[i] : offsets[i + 1]].reshape(params[i].shape)

        for i, p in enumerate(params):  # take over the moments a resume loaded, then share memory
            state = optimizer.state.get(p, {})
            if "exp_avg" in state:
                view(self.exp_avg_P, i)[...] = state["exp_avg"].numpy()
                view(self.exp_avg_sq_P, i)[...] = state["exp_avg_sq"].numpy()
                self.steps[i] = float(state["step"])
            optimizer.state[p] = {
                "step": torch.from_numpy(self.steps[i : i + 1].reshape(())),
                "exp_avg": torch.from_numpy(view(self.exp_avg_P, i)),
                "exp_avg_sq": torch.from_numpy(view(self.exp_avg_sq_P, i)),
            }
        self.params = [p.detach().numpy() for p in params]
        self.update_views = [view(self._scratch_P, i) for i in range(len(params))]
        grads = {id(p): view(self.grad_P, i) for i, p in enumerate(params)}
        self.hidden_grads = [(grads[id(m.weight)], grads[id(m.bias)]) for m in linears[0]]
        self.head_grads = [(grads[id(m.weight)], grads[id(m.bias)]) for m in linears[1]]

    @classmethod
    def create(
        cls,
        q_net: torch.nn.Module,
        target_net: torch.nn.Module,
        optimizer: torch.optim.Optimizer | NumpyAdamW,
        *,
        algo: str,
        gamma: float,
        loss: str,
        max_grad_norm: float,
    ) -> NumpyMLPUpdate | None:
        """The numpy update for these networks, or ``None`` unless they are CPU float32 MLP
        Q-networks trained by a :class:`NumpyAdamW` or a plain ``torch.optim.AdamW`` (one group,
        no AMSGrad)."""
        if mlp_layers(q_net) is None or mlp_layers(target_net) is None:
            return None
        groups = optimizer.param_groups
        if type(optimizer) not in (torch.optim.AdamW, NumpyAdamW) or len(groups) != 1:
            return None
        group = groups[0]
        if group["amsgrad"] or group["maximize"] or group.get("differentiable") or group.get("capturable"):
            return None
        if [id(p) for p in group["params"]] != [id(p) for p in q_net.parameters()]:
            return None
        assert isinstance(q_net, QNetwork) and isinstance(target_net, QNetwork)
        return cls(q_net, target_net, optimizer, algo=algo, gamma=gamma, loss=loss, max_grad_norm=max_grad_norm)

    @staticmethod
    def _q_values(layers: tuple[list[Layer], list[Layer]]) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda obs: torch.from_numpy(numpy_q_values(layers, obs.numpy()))

    def step(self, batch: Batch, *, epsilon: float, generator: torch.Generator) -> Update:
        """Take one AdamW step on ``batch`` at the optimizer's current learning rate.

        The batch's ``discounts`` (n-step) replace ``gamma``, its ``weights`` (prioritized
        replay) weight each term of the loss, ``dL/dQ(s_i, a_i)`` scaled by ``w_i`` to match, and its
        ``next_mask`` limits the target to the legal actions of ``s'`` (the target needs no gradient).
        """
        obs_BD = batch.obs.astype(np.float32, copy=False)
        batch_size = len(batch.actions)
        target_B = td_target(
            self.algo,
            torch.from_numpy(batch.rewards),
            torch.from_numpy(batch.terminated),
            torch.from_numpy(batch.next_obs.astype(np.float32, copy=False)),
            self._online_q,
            self._target_q,
            self.gamma if batch.discounts is None else torch.from_numpy(batch.discounts),
            epsilon,
            generator,
            None if batch.next_mask is None else torch.from_numpy(batch.next_mask),
        ).numpy()

        hidden, head = self.online
        features = _features(hidden, obs_BD)
        q_BA = _head(head, features[-1])
        rows_B = np.arange(batch_size)
        q_sa_B = q_BA[rows_B, batch.actions]
        weights_B = batch.weights
        weights = None if weights_B is None else torch.from_numpy(weights_B)
        loss = td_loss(torch.from_numpy(q_sa_B), torch.from_numpy(target_B), self.loss, weights)
        diff_B = q_sa_B - target_B
        dq_sa_B = diff_B * (2.0 / batch_size) if self.loss == "mse" else np.clip(diff_B, -1.0, 1.0) / batch_size
        if weights_B is not None:
            dq_sa_B *= weights_B
        dq_BA = np.zeros_like(q_BA)
        dq_BA[rows_B, batch.actions] = dq_sa_B
        self._backward(features, dq_BA)
        self._adamw()
        return Update(loss, torch.from_numpy(np.abs(diff_B)))

    def _backward(self, features: list[np.ndarray], dq_BA: np.ndarray) -> None:
        """Write ``dL/dtheta`` into ``grad_P`` from ``dL/dQ`` and the forward pass's features."""
        hidden, head = self.online
        h_BF = features[-1]
        if len(head) == 1:
            outs = [dq_BA]
        else:  # Q = V + A - mean_a A
            outs = [dq_BA.sum(axis=1, keepdims=True), dq_BA - dq_BA.mean(axis=1, keepdims=True)]
        dh_BF = None
        for (weight_OF, _), (dweight_OF, dbias_O), dout_BO in zip(head, self.head_grads, outs, strict=True):
            np.matmul(dout_BO.T, h_BF, out=dweight_OF)
            np.sum(dout_BO, axis=0, out=dbias_O)
            dh_BF = dout_BO @ weight_OF if dh_BF is None else dh_BF + dout_BO @ weight_OF
        assert dh_BF is not None
        for i in range(len(hidden) - 1, -1, -1):
            dpre_BO = dh_BF * (features[i + 1] > 0)  # ReLU: gradient only where the unit was active
            dweight_OI, dbias_O = self.hidden_grads[i]
            np.matmul(dpre_BO.T, features[i], out=dweight_OI)
            np.sum(dpre_BO, axis=0, out=dbias_O)
            if i > 0:
                dh_BF = dpre_BO @ hidden[i][0]

    def _adamw(self) -> None:
        """Clip ``grad_P`` and apply one AdamW step to the parameters and the moments."""
        g_P, m_P, v_P, tmp_P, tmp2_P = self.grad_P, self.exp_avg_P, self.exp_avg_sq_P, self._scratch_P, self._scratch2_P
        if self.max_grad_norm > 0:
            coef = self.max_grad_norm / (float(np.sqrt(np.dot(g_P, g_P))) + 1e-6)
            if not coef >= 1.0:  # as clip_grad_norm_: scale by min(coef, 1); NaN propagates
                g_P *= min(coef, 1.0)
        group = self.group
        lr, (beta1, beta2), eps, weight_decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        self.steps += 1.0
        t = float(self.steps[0])
        np.subtract(g_P, m_P, out=tmp_P)  # m <- m + (1 - beta1) (g - m)
        tmp_P *= 1.0 - beta1
        m_P += tmp_P
        np.multiply(g_P, g_P, out=tmp_P)  # v <- beta2 v + (1 - beta2) g^2
        tmp_P *= 1.0 - beta2
        v_P *= beta2
        v_P += tmp_P
        np.sqrt(v_P, out=tmp2_P)  # update = lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
        tmp2_P *= 1.0 / np.sqrt(1.0 - beta2**t)
        tmp2_P += eps
        np.divide(m_P, tmp2_P, out=tmp_P)
        tmp_P *= lr / (1.0 - beta1**t)
        decay = 1.0 - lr * weight_decay
        for param, update in zip(self.params, self.update_views, strict=True):
            if weight_decay:
                param *= decay
            param -= update
