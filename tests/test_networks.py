"""DuelDQN against its spec, and the generic builder."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from dueldqn import DuelDQN, DuelingHead, QHead, build_q_network, preprocess_frames
from dueldqn.networks import count_parameters


@pytest.fixture
def net() -> DuelDQN:
    torch.manual_seed(0)
    return DuelDQN()


def test_spec_output_shape(net: DuelDQN) -> None:
    assert net(torch.rand(2, 4, 84, 84)).shape == (2, 4)


def test_parameter_count_is_the_specs(net: DuelDQN) -> None:
    # conv1 4*32*8*8+32, conv2 32*64*4*4+64, conv3 64*64*3*3+64, fc 3136*512+512, V 512+1, A 512*4+4
    expected = 8224 + 32832 + 36928 + 1606144 + 513 + 2052
    assert expected == 1_686_693
    assert count_parameters(net) == expected


def test_each_conv_output_shape(net: DuelDQN) -> None:
    shapes = []
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (4, 32, (8, 8), (4, 4)),
        (32, 64, (4, 4), (2, 2)),
        (64, 64, (3, 3), (1, 1)),
    ]
    for conv in convs:
        conv.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    net(torch.rand(3, 4, 84, 84))
    assert shapes == [(3, 32, 20, 20), (3, 64, 9, 9), (3, 64, 7, 7)]
    linears = [(m.in_features, m.out_features) for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert linears == [(3136, 512), (512, 1), (512, 4)]


def _head_outputs(net: DuelDQN, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    seen: dict[str, torch.Tensor] = {}
    head = net.head
    assert isinstance(head, DuelingHead)
    h1 = head.value.register_forward_hook(lambda m, i, o: seen.__setitem__("v", o))
    h2 = head.advantage.register_forward_hook(lambda m, i, o: seen.__setitem__("a", o))
    q = net(obs)
    h1.remove()
    h2.remove()
    return q, seen["v"], seen["a"]


def test_dueling_identity(net: DuelDQN) -> None:
    with torch.no_grad():
        q_BA, v_B1, a_BA = _head_outputs(net, torch.rand(5, 4, 84, 84))
    assert v_B1.shape == (5, 1) and a_BA.shape == (5, 4)
    torch.testing.assert_close(q_BA.mean(dim=1, keepdim=True), v_B1)
    torch.testing.assert_close(q_BA - q_BA.mean(dim=1, keepdim=True), a_BA - a_BA.mean(dim=1, keepdim=True))
    torch.testing.assert_close(q_BA, v_B1 + a_BA - a_BA.mean(dim=1, keepdim=True))


def test_both_heads_receive_gradients(net: DuelDQN) -> None:
    q = net(torch.rand(2, 4, 84, 84))
    q[:, 1].sum().backward()
    head = net.head
    assert isinstance(head, DuelingHead)
    for layer in (head.value, head.advantage):
        assert isinstance(layer, torch.nn.Linear)
        assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0
    # d q[:,1] / d A = e_1 - 1/4: the advantage rows other than 1 get negative gradient from the mean.
    assert head.value.bias.grad is not None
    torch.testing.assert_close(head.value.bias.grad, torch.tensor([2.0]))
    assert head.advantage.bias.grad is not None
    torch.testing.assert_close(head.advantage.bias.grad, torch.tensor([-0.5, 1.5, -0.5, -0.5]))


def test_rows_are_independent_and_single_obs_path(net: DuelDQN) -> None:
    obs = torch.rand(3, 4, 84, 84)
    with torch.no_grad():
        batch = net(obs)
        for i in range(3):
            single = net(obs[i])
            assert single.shape == (4,)
            torch.testing.assert_close(single, batch[i], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("obs", "error", "fragment"),
    [
        (torch.rand(4, 84), ValueError, "(B, 4, 84, 84)"),
        (torch.rand(1, 1, 4, 84, 84), ValueError, "got shape (1, 1, 4, 84, 84)"),
        (torch.rand(2, 3, 84, 84), ValueError, "got shape (2, 3, 84, 84)"),
        (torch.rand(2, 4, 64, 64), ValueError, "got shape (2, 4, 64, 64)"),
        (torch.zeros(2, 4, 84, 84, dtype=torch.uint8), TypeError, "preprocess_frames"),
        (torch.zeros(2, 4, 84, 84, dtype=torch.int64), TypeError, "got dtype torch.int64"),
        (np.zeros((2, 4, 84, 84), dtype=np.float32), TypeError, "got ndarray"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(
    net: DuelDQN, obs: object, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error) as info:
        net(obs)
    assert fragment in str(info.value)
    assert "float tensor of shape (B, 4, 84, 84) or (4, 84, 84)" in str(info.value)


def test_preprocess_frames_scales_uint8_to_unit_interval(net: DuelDQN) -> None:
    frames = torch.tensor([[0, 51, 255]], dtype=torch.uint8)
    torch.testing.assert_close(preprocess_frames(frames), torch.tensor([[0.0, 0.2, 1.0]]))
    with pytest.raises(TypeError, match="uint8"):
        preprocess_frames(torch.rand(2))
    assert net(preprocess_frames(torch.zeros(1, 4, 84, 84, dtype=torch.uint8))).shape == (1, 4)


def test_state_dict_round_trip(net: DuelDQN) -> None:
    other = DuelDQN()
    other.load_state_dict(net.state_dict())
    obs = torch.rand(2, 4, 84, 84)
    with torch.no_grad():
        torch.testing.assert_close(other(obs), net(obs), rtol=0, atol=0)


def test_builder_shapes_for_vector_and_frame_spaces() -> None:
    cartpole_obs = gym.spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
    q_net = build_q_network(cartpole_obs, gym.spaces.Discrete(2), hidden_sizes=(32, 16))
    assert q_net(torch.rand(7, 4)).shape == (7, 2)
    assert isinstance(q_net.head, DuelingHead)
    plain = build_q_network(cartpole_obs, gym.spaces.Discrete(2), dueling=False, hidden_sizes=(32,))
    assert isinstance(plain.head, QHead) and plain(torch.rand(3, 4)).shape == (3, 2)
    # 4*32+32 encoder, 32*2+2 head
    assert count_parameters(plain) == 160 + 66

    frames = gym.spaces.Box(0, 255, shape=(4, 84, 84), dtype=np.uint8)
    breakout = build_q_network(frames, gym.spaces.Discrete(4))
    assert isinstance(breakout, DuelDQN) and count_parameters(breakout) == 1_686_693
    pong = build_q_network(frames, gym.spaces.Discrete(6))
    assert pong(torch.rand(2, 4, 84, 84)).shape == (2, 6)
    assert count_parameters(pong) == 1_686_693 - 2052 + 512 * 6 + 6


@pytest.mark.parametrize(
    ("obs_space", "act_space", "fragment"),
    [
        (gym.spaces.Box(-1, 1, (4,)), gym.spaces.Box(-1, 1, (1,)), "Discrete action space"),
        (gym.spaces.Discrete(3), gym.spaces.Discrete(2), "Box observation space"),
        (gym.spaces.Box(-1, 1, (2, 3)), gym.spaces.Discrete(2), "(D,) or images (C, H, W)"),
        (gym.spaces.Box(-1, 1, (3, 2, 2)), gym.spaces.Discrete(2), "at least 3x3 pixels"),
    ],
)
def test_builder_refuses_unsupported_spaces(obs_space: gym.Space, act_space: gym.Space, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        build_q_network(obs_space, act_space)
    assert fragment in str(info.value)
