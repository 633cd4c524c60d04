"""Inference benchmark and Table 7 report (issue 5).

``tools/benchmark.py`` and ``tools/table7.py`` are thin front ends of this
package: :mod:`.runner` measures (GEMM reference, peer, configs),
:mod:`.report` merges measurements with COCO metrics and the complexity
table into the paper's Table 7.
"""
