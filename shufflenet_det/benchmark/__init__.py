"""Inference benchmark and Table 7 report.

``tools/benchmark.py`` and ``tools/table7.py`` are thin front ends of this
package: :mod:`.runner` measures (one :class:`~.runner.Runner` for ours and
the peer, :mod:`.peer` its adapter; one flat JSON record per run),
:mod:`.report` merges the records with COCO metrics and the complexity
table into the paper's Table 7, and :mod:`.render` draws the markdown and
the plot. The measuring tools it uses live below it: timing loops and
machine facts in :mod:`shufflenet_det.measure`, MACs and time per part in
:mod:`shufflenet_det.analysis` (``macs``, ``parts``), deploy steps, their
checks and the ONNX runtimes in :mod:`shufflenet_det.deploy`.
"""
