"""Utilities outside the model registry (inference-time optimisation)."""
from .inference import (DEFAULT_OPTIMIZATIONS, OPTIMIZATIONS, PartRecorder,
                        compare_outputs, count_batchnorm, fold_batchnorm,
                        optimize_for_inference, parse_optimizations,
                        verify_parts)
from .nms import topk_batched_nms

__all__ = ['DEFAULT_OPTIMIZATIONS', 'OPTIMIZATIONS', 'PartRecorder',
           'compare_outputs', 'count_batchnorm', 'fold_batchnorm',
           'optimize_for_inference', 'parse_optimizations',
           'topk_batched_nms', 'verify_parts']
