from .robust_loading import RobustLoadImageFromFile, jpeg_is_truncated

__all__ = ['RobustLoadImageFromFile', 'jpeg_is_truncated']
