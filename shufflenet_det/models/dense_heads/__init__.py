from .light_head_rpn_head import LightHeadRPNHead

__all__ = ['LightHeadRPNHead']
