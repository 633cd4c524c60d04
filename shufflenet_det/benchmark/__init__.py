"""Inference benchmark and Table 7 report.

``tools/benchmark.py`` and ``tools/table7.py`` are thin front ends of this
package: :mod:`.runner` measures (one :class:`~.runner.Runner` for ours and
the peer, one flat JSON record per run), :mod:`.report` merges the records
with COCO metrics and the complexity table into the paper's Table 7, and
:mod:`.render` writes the markdown.
"""
