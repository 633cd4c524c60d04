from .light_head_bbox_head import LightHeadBBoxHead

__all__ = ['LightHeadBBoxHead']
