"""What every tool under ``tools/`` does with a bad config or checkpoint path.

A tool checks the files it was given before building anything, and a bad one
ends the run with one line that names the path and what is wrong, and a
non-zero exit status, instead of a library's traceback that names neither
(torch's "PytorchStreamReader failed reading zip archive: failed finding
central directory" for a truncated checkpoint, for instance)::

    def main(argv=None):
        args = parse_args(argv)            # with add_debug_flag(parser)
        cfg = check_config(args.config)
        check_checkpoint(args.checkpoint)
        ...

    if __name__ == '__main__':
        run_tool(main)

``--debug`` shows the traceback instead.
"""
import glob
import os
import os.path as osp
import sys
import zipfile
from typing import Callable, Iterable, List, Optional, Sequence

#: Exit status of a run ended by :class:`ToolInputError` (argparse's, for
#: the same kind of mistake: a bad argument).
EXIT_BAD_INPUT = 2
_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTO = 0x80


class ToolInputError(Exception):
    """A file given to a tool cannot be used; the message is one line that
    names the path and what is wrong with it."""


def add_debug_flag(parser) -> None:
    """Add ``--debug`` (show the traceback of an input error) to a parser."""
    parser.add_argument('--debug', action='store_true',
                        help='on a bad config or checkpoint, show the '
                        'traceback instead of one line')


def parse_launcher_args(parser, argv: Optional[list] = None):
    """Add mmdet's distributed-launch flags (``--launcher``,
    ``--local_rank``) and ``--debug``, parse, and export ``LOCAL_RANK`` as
    ``torch.distributed.launch`` expects (``tools/train.py``,
    ``tools/test.py``)."""
    parser.add_argument('--launcher', default='none', help='job launcher',
                        choices=['none', 'pytorch', 'slurm', 'mpi'])
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


def run_tool(main: Callable[[], object], argv: Optional[list] = None) -> None:
    """Run ``main()`` and end the process the way a tool should.

    A :class:`ToolInputError` ends it with ``<tool>: error: <message>`` on
    stderr and exit status :data:`EXIT_BAD_INPUT`, or with the traceback when
    ``--debug`` is among the arguments.
    """
    argv = sys.argv[1:] if argv is None else argv
    try:
        main()
    except ToolInputError as exc:
        if '--debug' in argv:
            raise
        tool = osp.basename(sys.argv[0]) or 'tool'
        print(f'{tool}: error: {exc}', file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def _first_line(exc: BaseException, limit: int = 200) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = f'{type(exc).__name__}: {lines[0] if lines else ""}'.rstrip(': ')
    return text if len(text) <= limit else text[:limit] + '...'


def _check_file(path: str, what: str) -> None:
    if not osp.exists(path):
        raise ToolInputError(f'{what} not found: {path}')
    if not osp.isfile(path):
        raise ToolInputError(f'{what} is not a file: {path}')
    if osp.getsize(path) == 0:
        raise ToolInputError(f'{what} is empty (0 bytes): {path}')


def check_config(path: str, cfg_options: Optional[dict] = None,
                 required: Iterable[str] = ('model', )):
    """Load a config file, or say in one line why it cannot be used.

    Args:
        path (str): The config file.
        cfg_options (dict, optional): ``--cfg-options`` to merge.
        required (Iterable[str]): Top-level keys the tool needs.

    Returns:
        mmengine.Config: The config.

    Raises:
        ToolInputError: The file is missing, empty or not a file, does not
            parse (syntax error, missing ``_base_``, a name error...) or
            lacks a required key.
    """
    from mmengine.config import Config
    _check_file(path, 'config file')
    try:
        cfg = Config.fromfile(path)
    except Exception as exc:  # noqa: BLE001  (mmengine raises many types)
        raise ToolInputError(
            f'config file cannot be parsed: {path} ({_first_line(exc)})'
        ) from exc
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    missing = [key for key in required if key not in cfg]
    if missing:
        raise ToolInputError(f'config file defines no {", ".join(missing)}: '
                             f'{path}')
    return cfg


def check_checkpoint(path: Optional[str]) -> None:
    """Check that ``path`` is a readable PyTorch checkpoint holding weights.

    The archive is opened memory-mapped (zip format, what ``torch.save``
    writes) so a large checkpoint is not read twice; under torch's default
    ``weights_only`` loading (with :mod:`shufflenet_det.compat`'s allow-list
    for mmengine's training checkpoints), so nothing else is executed.

    Args:
        path (str, optional): The checkpoint; None (no checkpoint) passes.

    Raises:
        ToolInputError: The file is missing, empty or not a file, a zip
            archive without its end (truncated), not a checkpoint at all, or
            one without any tensor.
    """
    if path is None:
        return
    import torch

    import shufflenet_det  # noqa: F401  (mmengine's classes allow-listed)
    _check_file(path, 'checkpoint file')
    with open(path, 'rb') as f:
        head = f.read(8)
    size = osp.getsize(path)
    is_zip = zipfile.is_zipfile(path)
    if head.startswith(_ZIP_MAGIC) and not is_zip:
        raise ToolInputError(
            f'checkpoint file is truncated or corrupt (a zip archive without '
            f'its central directory at the end, {size} bytes): {path}')
    if not is_zip and head[:1] != bytes([_PICKLE_PROTO]):
        raise ToolInputError(
            f'not a PyTorch checkpoint (neither a torch.save zip archive nor '
            f'a pickle; the file starts with {head!r}): {path}')
    try:
        obj = torch.load(path, map_location='cpu', mmap=is_zip)
    except Exception as exc:  # noqa: BLE001  (zip, pickle, torch errors)
        raise ToolInputError(f'checkpoint file cannot be read: {path} '
                             f'({_first_line(exc)})') from exc
    weights = obj.get('state_dict', obj) if isinstance(obj, dict) else obj
    if not (isinstance(weights, dict) and any(
            isinstance(v, torch.Tensor) for v in weights.values())):
        raise ToolInputError(
            f'checkpoint file holds no weights (a {type(obj).__name__} '
            f'without a state_dict of tensors): {path}')


def resolve_configs(patterns: Sequence[str], all_configs: bool = False,
                    root: str = '.') -> List[str]:
    """Config paths from a tool's arguments, sorted within each pattern,
    without duplicates.

    Args:
        patterns (Sequence[str]): Paths or glob patterns, relative to the
            working directory.
        all_configs (bool): Add Table 7's twenty configs
            (:data:`shufflenet_det.table7.CONFIGS` under ``root``).
        root (str): The repository root.

    Raises:
        ToolInputError: Naming the pattern that matched nothing.
    """
    from shufflenet_det.table7 import CONFIGS
    full = [p if osp.isabs(p) else osp.join('.', p) for p in patterns]
    found = []
    for pattern in full + ([osp.join(root, CONFIGS)] if all_configs else []):
        matches = [osp.relpath(m) for m in sorted(glob.glob(pattern))]
        if not matches:
            raise ToolInputError(f'no config matches {pattern!r}')
        found += [m for m in matches if m not in found]
    return found
