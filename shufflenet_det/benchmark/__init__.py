"""Inference benchmark and Table 7 report (issue 5).

``tools/benchmark.py`` and ``tools/table7.py`` are thin front ends of this
package: :mod:`.runner` measures (GEMM reference, then the peer and every
config through the same steps) and writes flat JSON, :mod:`.report` merges
measurements with COCO metrics and the complexity table into the paper's
Table 7, and :mod:`.render` writes the markdown.
"""
