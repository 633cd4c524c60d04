"""Markdown tables and cells, written one way for every report of this
package."""
from typing import Iterable, List, Optional, Sequence

from .table7 import MISSING


def fmt(value, spec: str = '.1f') -> str:
    """``value`` formatted by ``spec``, or :data:`~.table7.MISSING` when
    None: the one way a number this project did not measure is shown."""
    return MISSING if value is None else format(value, spec)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]],
                   align: Optional[Sequence[str]] = None) -> List[str]:
    """Lines of a GitHub markdown table.

    Args:
        header (Sequence[str]): Column titles.
        rows (Iterable[Sequence[str]]): Cells, already formatted.
        align (Sequence[str], optional): Rule cell per column (``'---'``,
            ``'---:'``); default ``'---'`` for every column.

    Returns:
        list[str]: Header, rule and one line per row.
    """
    rule = align or ['---'] * len(header)
    return (['| ' + ' | '.join(header) + ' |', '|' + '|'.join(rule) + '|']
            + ['| ' + ' | '.join(row) + ' |' for row in rows])
