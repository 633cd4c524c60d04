from .robust_coco_metric import RobustCocoMetric

__all__ = ['RobustCocoMetric']
