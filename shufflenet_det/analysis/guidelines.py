"""The four guideline micro-benchmarks of ShuffleNet V2 (paper Tables 1-4).

Section 2 of the paper argues that speed is not FLOPs with four controlled
experiments at fixed FLOPs, on a GTX 1080Ti (cuDNN 7, "batches/s") and a
single-threaded Snapdragon 810 ("images/s"; labelled CPU in Tables 2-4):

* **G1** (Table 1) equal channel width minimises memory access: 10 blocks of
  two 1x1 convs ``c1 -> c2 -> c1``, c1:c2 = 1:1, 1:2, 1:6, 1:12.
* **G2** (Table 2) group convolution costs: 10 stacked 1x1 convs ``c -> c``
  with ``g`` = 1, 2, 4, 8 groups.
* **G3** (Table 3) fragmentation: blocks of 1, 2 or 4 1x1 convs in series or
  in parallel, each block stacked 10 times.
* **G4** (Table 4) element-wise operations: a ResNet bottleneck stacked 10
  times, with and without its ReLUs and its shortcut.

All at 56x56 input. The paper's widths and speeds (``PAPER_TABLES``) live
in :mod:`shufflenet_det.paper`, copied from its text
(``tests/test_guidelines.py`` checks them against it). What the paper
leaves unsaid is decided here, each choice named in :data:`ASSUMPTIONS`,
and written into every report.

The CPU run uses the paper's ARM widths (the CPU proxy for its ARM column),
a CUDA run the GPU widths. Timing and comparison: :mod:`.guidelines_bench`;
reports: :mod:`.guidelines_report`.
"""
import math
from typing import Tuple

import torch
from torch import nn

from ..paper import MULTIPLIERS, NUM_BLOCKS, PAPER_TABLES

#: What the paper does not state, and what this module does instead.
ASSUMPTIONS = (
    'Batch size 1 on both platforms: not stated for Tables 1-4. Batch 8 (the '
    "paper's Fig. 1 GPU setting) is ruled out by arithmetic: Table 1 1:1 x4 "
    'is 10 x 2 x 56^2 x 512^2 = 16.4 GMAC per image, and 232 batches/s of 8 '
    'would be 61 TFLOP/s, five times a GTX 1080Ti\'s ~11 TFLOP/s peak; at '
    'batch 1 it is 7.6 TFLOP/s.',
    'Columns x1/x2/x4 of Tables 1-2 multiply every channel count by 1/2/4 '
    "(Table 3's 1-fragment at c = 128/256/512 matches Table 2's g = 1 "
    'columns).',
    'Convolutions have no bias, BN or ReLU in Tables 1-3 (not stated; the '
    'tables measure the convolutions). Table 4 has no BN either (folded at '
    'inference).',
    'Table 2: a width not divisible by g is moved to the multiple of g whose '
    'c^2/g is nearest the g = 1 row (only the ARM g = 8 x1 cell: 180 -> '
    '184).',
    'Table 3: n fragments in series are n 1x1 convs c\' -> c\'; in parallel, '
    'n 1x1 convs c\' -> c\' on the same input, summed. c\' = round(c / '
    'sqrt(n)) keeps the FLOPs of the 1-fragment block (the drawings, '
    'Appendix Fig. 1, are an image not in the text).',
    'Table 4: "c = channels in unit" is the bottleneck\'s input/output '
    'width with c/4 inside (ResNet expansion 4): 1x1 c -> c/4, ReLU, 3x3 '
    'c/4 -> c/4, ReLU, 1x1 c/4 -> c, + shortcut, ReLU. With c inside, '
    'c = 128 at 1436 batches/s would exceed the 1080Ti\'s peak. Input '
    '56x56 (not stated).',
    'Speed = median over interleaved rounds; each sample times enough '
    'forward calls (between two device synchronisations) to last '
    '--min-sample-s, after warm-up. The paper reports a mean of 100 runs for '
    'its Fig. 2 analysis only.',
)


def conv1x1(in_channels: int, out_channels: int, groups: int = 1) -> nn.Conv2d:
    """A bias-free 1x1 convolution."""
    return nn.Conv2d(in_channels, out_channels, 1, groups=groups, bias=False)


class FragmentBlock(nn.Module):
    """``num`` 1x1 convs ``c -> c`` in series, or in parallel and summed.

    Args:
        channels (int): Width c' of every conv.
        num (int): Number of fragments (convolutions), >= 1.
        parallel (bool): Branches on the same input, summed; else a chain.
    """

    def __init__(self, channels: int, num: int, parallel: bool = False):
        super().__init__()
        self.parallel = parallel
        self.convs = nn.ModuleList(conv1x1(channels, channels)
                                   for _ in range(num))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, c', H, W) -> (N, c', H, W)."""
        if self.parallel:
            out = self.convs[0](x)
            for conv in self.convs[1:]:
                out = out + conv(x)
            return out
        for conv in self.convs:
            x = conv(x)
        return x


class Bottleneck(nn.Module):
    """ResNet bottleneck ``1x1 c -> c/4, 3x3, 1x1 c/4 -> c`` (Table 4).

    Args:
        channels (int): Input and output width c (divisible by 4).
        relu (bool): Keep the three ReLUs.
        shortcut (bool): Keep the identity shortcut (its add).
    """

    def __init__(self, channels: int, relu: bool = True,
                 shortcut: bool = True):
        super().__init__()
        mid = channels // 4
        self.conv1 = conv1x1(channels, mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1, bias=False)
        self.conv3 = conv1x1(mid, channels)
        self.act = nn.ReLU(inplace=True) if relu else nn.Identity()
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, c, H, W) -> (N, c, H, W)."""
        out = self.act(self.conv1(x))
        out = self.act(self.conv2(out))
        out = self.conv3(out)
        if self.shortcut:
            out = out + x
        return self.act(out)


def g2_width(paper_c: int, groups: int, ref_c: int) -> int:
    """Width for a g-group conv: ``paper_c`` if divisible by ``groups``.

    Otherwise the multiple of ``groups`` next to ``paper_c`` whose
    ``c^2 / g`` is nearest ``ref_c^2`` (the g = 1 row's FLOPs).
    """
    if paper_c % groups == 0:
        return paper_c
    low = paper_c // groups * groups
    return min((low, low + groups),
               key=lambda c: abs(c * c / groups - ref_c * ref_c))


def fragment_width(c: int, num: int) -> int:
    """Width c' of ``num`` equal convs with the FLOPs of one c -> c conv."""
    return max(1, round(c / math.sqrt(num)))


def build_variant(table: int, row: int, col: int,
                  platform: str) -> Tuple[nn.Module, int, dict]:
    """The network of one table cell.

    Args:
        table (int): 1-4.
        row (int): Row index in ``PAPER_TABLES[table].rows``.
        col (int): Column index (multiplier for Tables 1-2, c for 3-4).
        platform (str): 'gpu' or 'arm': whose widths to use.

    Returns:
        tuple: ``(model, in_channels, widths)``; ``widths`` records the
        channel counts used (and the paper's, where they differ).
    """
    if table not in PAPER_TABLES:
        raise ValueError(f'table must be 1, 2, 3 or 4, got {table!r}')
    spec = PAPER_TABLES[table]
    if platform not in spec.widths:
        raise ValueError(f'platform must be one of {sorted(spec.widths)}, '
                         f'got {platform!r}')
    if table == 1:
        k = MULTIPLIERS[col]
        c1, c2 = (w * k for w in spec.widths[platform][row])
        layers = []
        for _ in range(NUM_BLOCKS):
            layers += [conv1x1(c1, c2), conv1x1(c2, c1)]
        return nn.Sequential(*layers), c1, dict(c1=c1, c2=c2)
    if table == 2:
        k = MULTIPLIERS[col]
        groups = int(spec.rows[row])
        paper_c = spec.widths[platform][row] * k
        c = g2_width(paper_c, groups, spec.widths[platform][0] * k)
        model = nn.Sequential(*(conv1x1(c, c, groups)
                                for _ in range(NUM_BLOCKS)))
        return model, c, dict(c=c, paper_c=paper_c, g=groups)
    if table == 3:
        c = spec.widths[platform][col]
        num = int(spec.rows[row][0])
        parallel = spec.rows[row].endswith('parallel')
        width = fragment_width(c, num)
        model = nn.Sequential(*(FragmentBlock(width, num, parallel)
                                for _ in range(NUM_BLOCKS)))
        return model, width, dict(c=c, fragment_c=width, fragments=num,
                                  parallel=parallel)
    # Table 4
    c = spec.widths[platform][col]
    relu, shortcut = (s.strip() == 'yes'
                      for s in spec.rows[row].split(','))
    model = nn.Sequential(*(Bottleneck(c, relu, shortcut)
                            for _ in range(NUM_BLOCKS)))
    return model, c, dict(c=c, mid=c // 4, relu=relu, shortcut=shortcut)


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds of the convolutions (and linear layers) for one forward
    of ``x``, by the package's one counter
    (:class:`~shufflenet_det.analysis.macs.MacCounter`).

    Counted from each layer's output shape (output elements x in/groups x
    kernel area), so it is independent of how the model wires them.
    """
    from .macs import MacCounter
    with MacCounter(model) as counter, torch.inference_mode():
        model(x)
    return counter.total
