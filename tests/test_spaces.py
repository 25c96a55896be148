"""Observation spaces: encoding against hand-computed vectors and gymnasium's flatten, images, spec JSON."""

from __future__ import annotations

import json
from typing import cast

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from dueldqn.spaces import ObservationEncoder, is_channels_last, space_from_json, space_to_json


def test_discrete_is_one_hot_from_its_start() -> None:
    encoder = ObservationEncoder(spaces.Discrete(4, start=-1))
    assert encoder.encoded_space == spaces.Box(0.0, 1.0, (4,), np.float32)
    expected = np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float32)
    assert np.array_equal(encoder.encode(np.array([1, -1, 2])), expected)
    assert encoder.is_single(2) and not encoder.is_single(np.array([2]))
    assert np.array_equal(encoder.encode_one(0), [0, 1, 0, 0])


def test_multi_discrete_is_one_hot_per_component() -> None:
    encoder = ObservationEncoder(spaces.MultiDiscrete([3, 2, 4], start=[0, 1, -2]))
    obs_BK = np.array([[2, 1, -2], [0, 2, 1]])
    # blocks: component 0 (values 0..2) | component 1 (values 1..2) | component 2 (values -2..1)
    first = [0, 0, 1, *[1, 0], *[1, 0, 0, 0]]
    second = [1, 0, 0, *[0, 1], *[0, 0, 0, 1]]
    assert np.array_equal(encoder.encode(obs_BK), np.array([first, second], dtype=np.float32))


def test_dict_and_tuple_concatenate_in_the_spaces_order() -> None:
    # gymnasium sorts a plain dict's keys: "a" (Tuple), then "b" (Box), then "c" (MultiBinary).
    space = spaces.Dict(
        {
            "c": spaces.MultiBinary(2),
            "a": spaces.Tuple([spaces.Discrete(2), spaces.Discrete(3)]),
            "b": spaces.Box(-5.0, 5.0, (2, 2)),
        }
    )
    encoder = ObservationEncoder(space)
    obs = {"c": np.array([1, 0], np.int8), "a": (1, 2), "b": np.array([[1.5, -2.0], [3.0, 4.0]], np.float32)}
    expected = [0, 1, *[0, 0, 1], *[1.5, -2.0, 3.0, 4.0], *[1, 0]]
    assert np.array_equal(encoder.encode_one(obs), np.array(expected, dtype=np.float32))
    assert encoder.encoded_space.shape == (11,)
    assert np.array_equal(encoder.encoded_space.low, np.array([0] * 5 + [-5] * 4 + [0] * 2, np.float32))


def test_vectorised_encoding_equals_gymnasium_flatten_sample_by_sample() -> None:
    space = spaces.Dict(
        {
            "pos": spaces.Discrete(5, start=2),
            # gymnasium annotates list[int], but runs np.array on it: nested lists give the 2-D space of its docs.
            "grid": spaces.MultiDiscrete([[2, 3], [4, 5]], start=[[1, 0], [0, -1]]),  # type: ignore[list-item]
            "bits": spaces.MultiBinary([2, 3]),
            "more": spaces.Tuple([spaces.Box(-1.0, 1.0, (3,)), spaces.Discrete(7)]),
        }
    )
    space.seed(0)
    samples = [space.sample() for _ in range(50)]
    out = gym.vector.utils.create_empty_array(space, 50)
    assert out is not None  # None only for a custom Space subclass
    batch = gym.vector.utils.concatenate(space, samples, out)
    # flatten returns an array for a Dict space (its annotation: the union over all spaces)
    reference_BD = np.stack([cast(np.ndarray, spaces.flatten(space, sample)) for sample in samples]).astype(np.float32)
    encoder = ObservationEncoder(space)
    assert encoder.is_single(samples[0]) and not encoder.is_single(batch)
    assert np.array_equal(encoder.encode(batch), reference_BD)
    flat = spaces.flatten_space(space)  # float64 there, float32 here
    assert isinstance(flat, spaces.Box)
    assert np.array_equal(encoder.encoded_space.low, flat.low) and np.array_equal(encoder.encoded_space.high, flat.high)


@pytest.mark.parametrize(
    ("shape", "channels_last"),
    [
        ((10, 10, 3), True),
        ((210, 160, 3), True),
        ((48, 64, 3), True),
        ((10, 10, 7), True),
        ((3, 10, 10), False),
        ((4, 84, 84), False),
        ((10, 10, 10), False),
        ((1, 8, 8), False),
    ],
)
def test_image_layout(shape: tuple[int, int, int], channels_last: bool) -> None:
    assert is_channels_last(shape) is channels_last


def test_channels_last_images_are_transposed_to_channels_first() -> None:
    space = spaces.Box(0, 255, (2, 3, 4), np.uint8)  # H=2, W=3, C=4... but C > H: channels-first
    assert ObservationEncoder(space).is_identity
    space = spaces.Box(0, 255, (4, 5, 3), np.uint8)  # H=4, W=5, C=3
    encoder = ObservationEncoder(space)
    assert encoder.kind == "transpose" and encoder.encoded_space.shape == (3, 4, 5)
    assert encoder.encoded_space.dtype == np.uint8
    obs_HWC = np.arange(60, dtype=np.uint8).reshape(4, 5, 3)  # pixel (h, w), channel c holds 15 h + 3 w + c
    obs_CHW = encoder.encode_one(obs_HWC)
    assert obs_CHW.dtype == np.uint8 and obs_CHW.flags.c_contiguous
    assert obs_CHW[0, 0, 0] == 0 and obs_CHW[2, 0, 0] == 2 and obs_CHW[0, 0, 1] == 3 and obs_CHW[1, 3, 4] == 58
    assert np.array_equal(
        obs_CHW[1], [[1, 4, 7, 10, 13], [16, 19, 22, 25, 28], [31, 34, 37, 40, 43], [46, 49, 52, 55, 58]]
    )
    batch = encoder.encode(np.stack([obs_HWC, 255 - obs_HWC]))
    assert batch.shape == (2, 3, 4, 5) and batch[1, 2, 3, 4] == 255 - 59


def test_other_boxes_are_flattened_and_1d_boxes_pass_through() -> None:
    grid = ObservationEncoder(spaces.Box(0, 9, (2, 3), np.int64))
    assert grid.kind == "flatten" and grid.encoded_space.shape == (6,)
    assert np.array_equal(grid.encode(np.arange(12).reshape(2, 2, 3)), np.arange(12).reshape(2, 6))
    vector = ObservationEncoder(spaces.Box(-1, 1, (4,)))
    assert vector.is_identity and vector.encoded_space is vector.space


def test_only_images_are_scaled_integer_vectors_become_their_values() -> None:
    # As SB3's preprocess_obs: uint8 images go to [0, 1]; a uint8 vector (Atari's RAM) or grid keeps its
    # values as floats, so the numpy path and the torch path (which scales any uint8 tensor) agree.
    from dueldqn.tensors import as_network_input

    for shape in ((5,), (1, 5)):
        enc = ObservationEncoder(spaces.Box(0, 255, shape, np.uint8))
        assert enc.kind == "flatten" and enc.encoded_space.dtype == np.float32
        encoded_B5 = enc.encode(np.array([[0, 1, 2, 128, 255]], np.uint8).reshape(1, *shape))
        assert encoded_B5.dtype == np.float32 and encoded_B5.tolist() == [[0.0, 1.0, 2.0, 128.0, 255.0]]
        assert as_network_input(encoded_B5, torch.device("cpu")).tolist() == [[0.0, 1.0, 2.0, 128.0, 255.0]]
    image = ObservationEncoder(spaces.Box(0, 255, (2, 3, 3), np.uint8))
    frame = np.full((1, 2, 3, 3), 255, np.uint8)
    assert as_network_input(image.encode(frame), torch.device("cpu")).max().item() == 1.0


@pytest.mark.parametrize(
    ("space", "fragment"),
    [
        (spaces.Text(5), "Text space"),
        (spaces.Dict({"image": spaces.Box(0, 255, (8, 8, 3), np.uint8)}), "image Box (8, 8, 3) inside a Tuple / Dict"),
        (spaces.Tuple([spaces.Discrete(2), spaces.Sequence(spaces.Discrete(2))]), "[1] is a Sequence space"),
        (spaces.Box(0, 1, (0,)), "empty"),
    ],
)
def test_unsupported_spaces_are_refused_saying_why(space: gym.Space, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        ObservationEncoder(space)
    assert fragment in str(info.value)


def test_a_batch_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match=r"expected an observation of shape \(4,\) or a batch \(B, 4\)"):
        ObservationEncoder(spaces.Box(-1, 1, (4,))).encode(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"expected an observation\['b'\] of shape \(2,\)"):
        ObservationEncoder(spaces.Dict({"a": spaces.Discrete(2), "b": spaces.MultiBinary(2)})).encode(
            {"a": np.array([0, 1]), "b": np.zeros((2, 3))}
        )


@pytest.mark.parametrize(
    "space",
    [
        spaces.Box(-np.inf, np.inf, (4,), np.float32),
        spaces.Box(np.array([0.0, -1.0]), np.array([np.inf, 2.5]), dtype=np.float64),
        spaces.Box(0, 255, (10, 10, 3), np.uint8),
        # The two ignores: gymnasium annotates numpy dtypes only (it runs np.dtype on bool) and list[int] for a
        # MultiDiscrete (it runs np.array on nested lists, giving a 2-D space).
        spaces.Box(0, 1, (3, 4, 4), bool),  # type: ignore[arg-type]
        spaces.Discrete(500),
        spaces.Discrete(3, start=-1),
        spaces.MultiDiscrete([[2, 3], [4, 5]], start=[[1, 0], [0, -1]]),  # type: ignore[list-item]
        spaces.MultiBinary([2, 3]),
        spaces.Dict({"z": spaces.Discrete(2), "a": spaces.Tuple([spaces.MultiBinary(3), spaces.Box(0, 1, (2,))])}),
    ],
)
def test_space_json_round_trip(space: gym.Space) -> None:
    value = json.loads(json.dumps(space_to_json(space)))
    back = space_from_json(value)
    assert back == space and type(back) is type(space)
    if isinstance(space, spaces.Dict):
        assert isinstance(back, spaces.Dict)
        assert list(back.spaces) == list(space.spaces) == ["a", "z"]
