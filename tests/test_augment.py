"""DrQ augmentation on hand-made frames: exact shifts, edge padding, the intensity factors, seeding."""

from __future__ import annotations

import pytest
import torch

from dueldqn.augment import augment


def _draws(seed: int | torch.Generator, batch: int, pad: int = 4) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The (dy, dx, z) that augment draws from a generator (or one seeded with ``seed``), in its order."""
    g = torch.Generator().manual_seed(seed) if isinstance(seed, int) else seed
    dy = torch.randint(0, 2 * pad, (batch,), generator=g)
    dx = torch.randint(0, 2 * pad, (batch,), generator=g)
    return dy, dx, torch.randn(batch, generator=g)


def _coordinates(batch: int, channels: int, h: int, w: int) -> torch.Tensor:
    """Frames whose pixel value encodes where it is: 1000 c + 100 i + j (distinct, exact in float32)."""
    c = torch.arange(channels).view(1, channels, 1, 1) * 1000.0
    i = torch.arange(h).view(1, 1, h, 1) * 100.0
    j = torch.arange(w).view(1, 1, 1, w).float()
    return (c + i + j).expand(batch, channels, h, w).contiguous()


def test_each_sample_is_its_stack_shifted_by_its_drawn_offset_with_edges_repeated() -> None:
    batch, channels, h, w = 16, 3, 12, 10
    frames = _coordinates(batch, channels, h, w)
    out = augment(frames, torch.Generator().manual_seed(3), intensity_scale=0.0)
    dy, dx, _ = _draws(3, batch)
    assert out.shape == frames.shape and out.dtype == torch.float32
    assert set(dy.tolist()) | set(dx.tolist()) <= set(range(8))
    for b in range(batch):
        sy, sx = int(dy[b]) - 4, int(dx[b]) - 4  # the shift: output pixel (i, j) shows source (i + sy, j + sx)
        for c in range(channels):
            for i in range(h):
                for j in range(w):
                    si, sj = min(max(i + sy, 0), h - 1), min(max(j + sx, 0), w - 1)
                    assert out[b, c, i, j] == 1000 * c + 100 * si + sj


def test_a_known_offset_moves_a_pixel_pattern_exactly() -> None:
    # A 2x2 block at rows 5-6, cols 3-4 of an otherwise black 16x16 frame, the same in all 4 frames.
    frames = torch.zeros(64, 4, 16, 16, dtype=torch.uint8)
    frames[:, :, 5:7, 3:5] = 255
    out = augment(frames, torch.Generator().manual_seed(11), intensity_scale=0.0)
    dy, dx, _ = _draws(11, 64)
    assert len({(int(a), int(b)) for a, b in zip(dy, dx, strict=True)}) > 20  # many offsets tried
    for b in range(64):
        want = torch.zeros(16, 16)
        row, col = 5 - (int(dy[b]) - 4), 3 - (int(dx[b]) - 4)  # the block moves against the crop offset
        want[row : row + 2, col : col + 2] = 1.0
        for c in range(4):
            torch.testing.assert_close(out[b, c], want, rtol=0, atol=0)


def test_edge_padding_repeats_the_border_pixels() -> None:
    # One frame with distinct border values; the shift (-4, -4) (offset 0, 0) shows 4 rows and
    # columns of padding at the top and left, each a copy of the first row / column.
    frame = torch.arange(1.0, 1.0 + 8 * 8).view(1, 1, 8, 8)
    g = torch.Generator().manual_seed(0)
    for _ in range(200):  # until the generator gives offset (0, 0) for this one-sample batch
        state = g.get_state()
        dy, dx = torch.randint(0, 8, (1,), generator=g), torch.randint(0, 8, (1,), generator=g)
        torch.randn(1, generator=g)
        if dy.item() == 0 and dx.item() == 0:
            break
    else:
        pytest.fail("no (0, 0) offset in 200 draws")
    g.set_state(state)
    out = augment(frame, g, intensity_scale=0.0)[0, 0]
    assert out[:4, :4].eq(frame[0, 0, 0, 0]).all()  # the corner pixel fills the padded corner
    assert out[:5, 4:].eq(frame[0, 0, 0, :4]).all()  # rows 0-4 all show the first row
    assert out[4:, :5].eq(frame[0, 0, :4, :1]).all()  # columns 0-4 all show the first column
    assert out[4:, 4:].eq(frame[0, 0, :4, :4]).all()


def test_intensity_factors_are_one_plus_five_percent_of_the_clipped_normal_draws() -> None:
    batch = 4096
    frames = torch.ones(batch, 4, 6, 6)  # constant frames: a shift changes nothing, so out = factor
    out = augment(frames, torch.Generator().manual_seed(5))
    _, _, z = _draws(5, batch)
    factor = 1.0 + 0.05 * z.clamp(-2.0, 2.0)
    torch.testing.assert_close(out, factor.view(batch, 1, 1, 1).expand_as(out), rtol=0, atol=0)
    assert out.min() >= 0.9 and out.max() <= 1.1
    assert (factor == 0.9).any() and (factor == 1.1).any()  # |z| > 2 happens (4.6% of draws): clipped
    assert out.amin(dim=(1, 2, 3)).eq(out.amax(dim=(1, 2, 3))).all()  # one factor for the whole stack


def test_uint8_frames_are_scaled_to_unit_range_as_the_float_path_does() -> None:
    frames = torch.randint(0, 256, (8, 4, 84, 84), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    from_uint8 = augment(frames, torch.Generator().manual_seed(9))
    from_float = augment(frames.float() / 255.0, torch.Generator().manual_seed(9))
    assert from_uint8.dtype == torch.float32
    torch.testing.assert_close(from_uint8, from_float, rtol=1e-6, atol=1e-7)


def test_the_same_seed_gives_the_same_output_and_two_calls_draw_independently() -> None:
    frames = _coordinates(32, 4, 84, 84)
    a = augment(frames, torch.Generator().manual_seed(7))
    b = augment(frames, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    # s and s' augmented one after the other from one generator: different offsets and factors.
    g = torch.Generator().manual_seed(7)
    first, second = augment(frames, g), augment(frames, g)
    assert torch.equal(first, a)
    assert not torch.equal(first, second)
    per_sample_differs = (first != second).flatten(1).any(dim=1)
    assert per_sample_differs.sum() >= 30  # (1/64 chance of an equal offset, and equal factors: never)
    g = torch.Generator().manual_seed(7)
    _draws(g, 32)  # the first call's
    dy2, dx2, z2 = _draws(g, 32)
    torch.testing.assert_close(
        second[:, 0, 42, 42], (4242.0 + 100 * (dy2 - 4) + (dx2 - 4)) * (1 + 0.05 * z2.clamp(-2, 2)), rtol=1e-6, atol=0
    )


def test_bad_input_is_refused() -> None:
    g = torch.Generator()
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        augment(torch.zeros(4, 84, 84), g)
    with pytest.raises(ValueError, match="pad >= 0"):
        augment(torch.zeros(1, 4, 84, 84), g, pad=-1)
