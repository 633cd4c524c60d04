"""Channel shuffle (ShuffleNet v1/v2)."""
import torch
from torch import Tensor


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave the channels of ``groups`` equal groups.

    Args:
        x (Tensor): Shape (N, C, H, W), C divisible by ``groups``.
        groups (int): Number of groups.

    Returns:
        Tensor: Shape (N, C, H, W); channel ``g * (C // groups) + i`` of the
        input becomes channel ``i * groups + g``.
    """
    n, c, h, w = x.shape
    x = x.view(n, groups, c // groups, h, w).transpose(1, 2)
    return x.reshape(n, c, h, w)


def interleave(a: Tensor, b: Tensor) -> Tensor:
    """``channel_shuffle(torch.cat((a, b), 1), 2)`` written in one copy.

    Output channel ``2i`` is ``a[:, i]`` and ``2i + 1`` is ``b[:, i]``. In
    channels-last memory the pairs are adjacent floats of one pixel, so
    stacking on a new last axis writes the result once and keeps NHWC;
    concatenation then shuffle would copy twice, the second time with a
    strided transpose. Same values, bit for bit (only copies).

    Args:
        a (Tensor): (N, C, H, W).
        b (Tensor): (N, C, H, W).

    Returns:
        Tensor: (N, 2C, H, W), channels-last if the inputs are.
    """
    n, c, h, w = a.shape
    # ``a`` may be a channel slice of an NHWC map (strided, channels still
    # innermost): treat it as NHWC too.
    if b.is_contiguous(memory_format=torch.channels_last) or a.stride(1) == 1:
        return torch.stack((a.permute(0, 2, 3, 1), b.permute(0, 2, 3, 1)),
                           4).reshape(n, h, w, 2 * c).permute(0, 3, 1, 2)
    return torch.stack((a, b), 2).reshape(n, 2 * c, h, w)
