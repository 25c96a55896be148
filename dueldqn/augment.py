"""DrQ's image augmentation: a random shift of each stacked observation, then a random brightness.

Data-regularised Q-learning (Kostrikov, Yarats and Fergus, 2021) trains on augmented copies of
the sampled observations; on Atari 100k (DrQ(epsilon), Agarwal et al., 2021) each observation
``s`` of a batch, and independently each ``s'``, is

1. padded by ``pad = 4`` pixels on every side, repeating the edge pixels (``'edge'`` padding,
   PyTorch's ``ReplicationPad2d``), and cropped back to ``H x W`` at a random offset
   ``(dy, dx)``: a shift of the whole frame stack by ``(dy - pad, dx - pad)`` pixels;
2. multiplied by ``1 + 0.05 * clip(z, -2, 2)``, ``z ~ N(0, 1)``: one factor in [0.9, 1.1]
   for the whole stack.

This matches Dopamine's ``drq_image_augmentation`` (``labs/atari_100k/atari_100k_rainbow_agent.py``),
the code behind the published DrQ(epsilon) scores: one offset and one factor per sample (all
``C`` frames of a stack move and brighten together), the offsets drawn uniformly from
``{0, ..., 2 pad - 1}`` (``jax.random.randint``'s upper bound is exclusive, so the shifts are
-4 ... +3; SPR's kornia ``RandomCrop`` draws -4 ... +4), applied to the frames scaled to [0, 1].

Edge padding followed by a crop is the same as reading the source at clamped coordinates,
``out[b, c, i, j] = x[b, c, clamp(i + dy_b - pad), clamp(j + dx_b - pad)]``, so no padded copy is
made: one gather over the batch, then one multiply that also scales uint8 frames to [0, 1].

Shapes: ``B`` batch, ``C`` stacked frames, ``H`` / ``W`` frame height and width.
"""

from __future__ import annotations

import torch

PAD = 4  # pixels of edge padding: shifts of up to 4 pixels
INTENSITY_SCALE = 0.05  # the factor's standard deviation, before clipping at 2 of them


def augment(
    frames_BCHW: torch.Tensor,
    generator: torch.Generator,
    *,
    pad: int = PAD,
    intensity_scale: float = INTENSITY_SCALE,
) -> torch.Tensor:
    """DrQ's random shift and intensity for a batch of frame stacks, as floats on their device.

    Draws, in this order from ``generator``: ``dy_B`` and ``dx_B`` uniform on
    ``{0, ..., 2 pad - 1}``, then ``z_B ~ N(0, 1)``; returns

        out[b, c, i, j] = x[b, c, clamp(i + dy_b - pad, 0, H - 1), clamp(j + dx_b - pad, 0, W - 1)]
                          * (1 + intensity_scale * clip(z_b, -2, 2))

    with ``x`` the frames in [0, 1]: uint8 frames become float32 divided by 255 (what
    :func:`dueldqn.networks.preprocess_frames` does; the factor is divided instead, so the result
    equals ``augment(preprocess_frames(x))`` up to rounding), float frames are taken as they are.

    Args:
        frames_BCHW: ``(B, C, H, W)`` uint8 or float frames.
        generator: a torch generator on the frames' device; the only source of randomness.
        pad: the largest shift in pixels (4 in DrQ); 0 turns the shift off.
        intensity_scale: 0.05 in DrQ; 0 turns the intensity change off.

    Raises:
        ValueError: for a tensor that is not ``(B, C, H, W)``, or a negative ``pad`` or scale.
    """
    if frames_BCHW.dim() != 4:
        raise ValueError(f"augment expects frames of shape (B, C, H, W), got {tuple(frames_BCHW.shape)}")
    if pad < 0 or intensity_scale < 0:
        raise ValueError(f"augment needs pad >= 0 and intensity_scale >= 0, got {pad} and {intensity_scale}")
    b, c, h, w = frames_BCHW.shape
    device = frames_BCHW.device
    shifted = frames_BCHW
    if pad > 0:
        dy_B = torch.randint(0, 2 * pad, (b,), generator=generator, device=device)
        dx_B = torch.randint(0, 2 * pad, (b,), generator=generator, device=device)
        rows_BH = (dy_B[:, None] + torch.arange(-pad, h - pad, device=device)).clamp_(0, h - 1)
        cols_BW = (dx_B[:, None] + torch.arange(-pad, w - pad, device=device)).clamp_(0, w - 1)
        source_BP = (rows_BH[:, :, None] * w + cols_BW[:, None, :]).view(b, 1, h * w)
        shifted = frames_BCHW.reshape(b, c, h * w).gather(2, source_BP.expand(b, c, h * w)).view(b, c, h, w)
    z_B = torch.randn(b, generator=generator, device=device)
    factor_B = 1.0 + intensity_scale * z_B.clamp_(-2.0, 2.0)
    if not frames_BCHW.is_floating_point():
        factor_B = factor_B / 255.0
    return torch.mul(shifted, factor_B.view(b, 1, 1, 1))
