"""Crash-safe file writes: a reader sees the old file or the new one."""
import json
import os
import os.path as osp
from typing import Any, Union

from mmengine.fileio import LocalBackend, register_backend


def atomic_write_bytes(data: bytes, path: Union[str, os.PathLike]) -> None:
    """Write ``data`` to ``path`` so that a crash never leaves it partial.

    The bytes go to a hidden temporary file in the same directory, are
    flushed and fsync'ed, then ``os.replace`` swaps the file in (atomic on
    POSIX and Windows for a same-filesystem rename), and the directory entry
    is fsync'ed. A SIGKILL or power loss at any point leaves either the
    previous content of ``path`` (or no file) or the complete new content,
    plus at most a stray ``.<name>.tmp-<pid>`` file.

    Args:
        data (bytes): Content to write.
        path (str | PathLike): Destination file.
    """
    path = os.fspath(path)
    directory = osp.dirname(osp.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = osp.join(directory, f'.{osp.basename(path)}.tmp-{os.getpid()}')
    try:
        with open(tmp, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(directory)


def atomic_write_json(obj: Any, path: Union[str, os.PathLike],
                      indent: int = 1, end: str = '') -> None:
    """:func:`atomic_write_bytes` of ``obj`` as JSON (UTF-8).

    Args:
        obj: JSON-serialisable data.
        path (str | PathLike): Destination file.
        indent (int): JSON indentation. Default: 1.
        end (str): Written after the JSON text. Default: ''.
    """
    text = json.dumps(obj, indent=indent) + end
    atomic_write_bytes(text.encode('utf-8'), path)


def _fsync_dir(directory: str) -> None:
    # Makes the rename itself durable; not supported everywhere (Windows).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend with atomic ``put``/``put_text``.

    Registered as ``'atomic_local'``: ``backend_args=dict(
    backend='atomic_local')`` makes :func:`mmengine.runner.save_checkpoint`
    (which serialises to memory, then calls ``put``) crash-safe.
    """

    def put(self, obj: bytes, filepath) -> None:
        atomic_write_bytes(obj, filepath)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        atomic_write_bytes(obj.encode(encoding), filepath)


register_backend('atomic_local', AtomicLocalBackend, force=True)
