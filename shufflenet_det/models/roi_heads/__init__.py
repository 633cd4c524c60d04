from .light_head_roi_head import LightHeadRoIHead

__all__ = ['LightHeadRoIHead']
