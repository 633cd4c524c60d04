from .atomic_io import (AtomicLocalBackend, atomic_write_bytes,
                        atomic_write_json)
from .hooks import *  # noqa: F401,F403
from .rng_state import get_rng_state, set_rng_state
from .runner import *  # noqa: F401,F403

__all__ = ['AtomicLocalBackend', 'atomic_write_bytes', 'atomic_write_json',
           'get_rng_state', 'set_rng_state']
