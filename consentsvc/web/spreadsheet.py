"""The CSV files the console hands out (audit log, reports): every cell one a spreadsheet
shows as text and never runs."""

from __future__ import annotations

# What makes Excel or LibreOffice read a cell as a formula (CSV formula injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str:
    """A value as a CSV cell; one that starts like a formula gets a quote before it."""
    text = str(value)
    return f"'{text}" if text.startswith(FORMULA_START) else text
