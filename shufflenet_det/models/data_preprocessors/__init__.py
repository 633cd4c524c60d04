from .one_pass_det_data_preprocessor import OnePassDetDataPreprocessor

__all__ = ['OnePassDetDataPreprocessor']
