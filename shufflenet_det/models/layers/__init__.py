from .channel_shuffle import channel_shuffle
from .large_separable_conv import LargeSeparableConv

__all__ = ['channel_shuffle', 'LargeSeparableConv']
