"""Markdown tables, written one way for every report of this package."""
from typing import Iterable, List, Optional, Sequence


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
