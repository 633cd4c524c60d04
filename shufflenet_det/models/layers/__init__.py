from .channel_shuffle import channel_shuffle

__all__ = ['channel_shuffle']
