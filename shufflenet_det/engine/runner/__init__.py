from .cpu_dist_runner import CPUDistRunner

__all__ = ['CPUDistRunner']
