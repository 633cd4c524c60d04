"""Channel shuffle (ShuffleNet v1/v2)."""
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
