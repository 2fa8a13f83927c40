"""Rendering tables for notebooks and the book: display strings, the styled HTML, and the paper beside ours.

A :class:`~fairpo.report.tables.Table` is shown as :class:`Rendered` (HTML for Jupyter and Jupyter Book,
plain text as its repr). Values are percent with 2 decimals, ``±`` the sample std, parentheses the
change against the full row, marks after a Δ or a parenthesis, ``Ref`` in the reference row; bold the
cells :func:`fairpo.report.tables.best_cells` picks. HTML ids are fixed, never random, so the same
table gives the same HTML (nbval compares it).
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fairpo.report.layout import DATASET_NAMES, DELTA, METRIC_COLUMNS, display_columns
from fairpo.report.stats import TESTS

if TYPE_CHECKING:
    from fairpo.report.tables import Table


@dataclass(repr=False)
class Rendered:
    """A rendered table for notebooks: HTML for Jupyter / Jupyter Book, plain text as its repr.

    ``styler`` is the pandas Styler behind the HTML (None for a message).
    """

    html: str
    text: str
    styler: object | None = None

    def _repr_html_(self) -> str:
        return self.html

    def to_html(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fmt(value: float, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    if round(value, 2) == 0:
        value = 0.0  # no "-0.00"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def display_strings(table: Table) -> pd.DataFrame:
    """The table as display strings, index the rows, columns :func:`~fairpo.report.layout.display_columns`."""
    columns = display_columns(table.layout)
    out = pd.DataFrame("", index=table.mean.index, columns=columns)
    refs = table.reference_rows
    for row in table.mean.index:
        for col in METRIC_COLUMNS:
            text = _fmt(table.mean.loc[row, col])
            std = table.std.loc[row, col]
            if math.isfinite(table.mean.loc[row, col]) and math.isfinite(std):
                text += f" ± {std:.2f}"
            if table.change is not None and math.isfinite(table.change.loc[row, col]):
                text += f" ({_fmt(table.change.loc[row, col], signed=True)}{table.marks.loc[row, col]})"
            out.loc[row, col] = text
        for col in table.delta.columns:
            if refs.get(col) == row:
                out.loc[row, (DELTA, col)] = "Ref"
            else:
                out.loc[row, (DELTA, col)] = (_fmt(table.delta.loc[row, col], signed=True)
                                              + table.marks.loc[row, (DELTA, col)])
    return out


def csv_link(frame: pd.DataFrame, name: str, *, index: bool = True) -> str:
    """An HTML link that downloads ``frame`` as ``<name>.csv``: the file travels inside the page (a
    ``data:`` URL), so it works offline and needs nothing beside the HTML."""
    flat = frame.copy()
    if isinstance(flat.columns, pd.MultiIndex):
        flat.columns = [" ".join(str(part) for part in col if str(part)) for col in flat.columns]
    data = base64.b64encode(flat.to_csv(index=index).encode("utf-8")).decode("ascii")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "table"
    return (f'<p class="csv-download"><a download="{safe}.csv" href="data:text/csv;charset=utf-8;base64,{data}">'
            f'Download this table as CSV ({safe}.csv)</a></p>')


def plain(frame: pd.DataFrame, name: str, *, digits: int | None = 3) -> Rendered:
    """A data frame for readers: no index column (reset it first if it carries information), an em dash
    for a missing value, numbers rounded to ``digits``, and a CSV download of the unrounded values."""
    shown = frame.round(digits) if digits is not None else frame
    html = shown.to_html(index=False, na_rep="—", classes="plain-table", border=0)
    return Rendered(html=html + csv_link(frame, name, index=False), text=shown.to_string(index=False, na_rep="—"))


def _uuid(table: Table) -> str:
    # Styler's default id is random; a fixed one keeps the HTML identical between runs (nbval).
    return f"fairpo-{table.source}-{table.layout}-{table.dataset}" + (f"-{table.number}" if table.number else "")


def _message(text: str) -> Rendered:
    return Rendered(html=f"<p><strong>{_html_escape(text)}</strong></p>", text=text)


def render(table: Table, uuid: str | None = None) -> Rendered:
    """``table`` for display: the Styler of :func:`styler` as HTML, the text table as plain text.

    With nothing to show (``table.message``) both are the message.
    """
    if table.empty:
        return _message(table.message)
    style = styler(table, uuid)
    return Rendered(html=style.to_html() + csv_link(display_strings(table), uuid or _uuid(table)), text=str(table),
                    styler=style)


def styler(table: Table, uuid: str | None = None):
    """A pandas Styler of ``table``: display strings, bold cells, caption naming the test.

    The HTML ids come from ``uuid`` (default: from the table's source, layout and data set), never
    random, so the same table gives the same HTML.
    """
    if table.empty:
        raise ValueError(f"nothing to style: {table.message}")
    shown = display_strings(table)
    bold = table.bold.reindex(index=shown.index, columns=shown.columns, fill_value=False)
    style = shown.style.set_uuid(uuid or _uuid(table)).set_caption(table.caption())
    style = style.apply(lambda _: np.where(bold.to_numpy(), "font-weight: bold", ""), axis=None)
    return style.set_table_styles([
        {"selector": "caption", "props": "caption-side: top; text-align: left; font-size: 0.9em;"},
        {"selector": "th, td", "props": "text-align: center; padding: 2px 6px;"},
        {"selector": "th.row_heading", "props": "text-align: left;"},
    ])


# ---------------------------------------------------------------- the paper beside ours


def comparison(ours: Table, paper: Table) -> pd.DataFrame:
    """Numbers side by side: rows of the layout, columns (display column, paper|ours).

    Means for the six metric columns, Δ for the Δ columns (NaN in the reference row). Raises if the
    two tables have different layouts.
    """
    if ours.layout != paper.layout:
        raise ValueError(f"cannot compare a {ours.layout!r} table with a {paper.layout!r} table")
    columns = display_columns(ours.layout)

    def values(t: Table) -> pd.DataFrame:
        return pd.concat([t.mean, t.delta.set_axis(columns[6:], axis=1)], axis=1)

    parts = {"paper": values(paper), "ours": values(ours)}
    frame = pd.concat(parts, axis=1)  # (source, metric, group)
    frame.columns = frame.columns.reorder_levels([1, 2, 0])
    return frame[pd.MultiIndex.from_tuples([(m, g, s) for m, g in columns for s in ("paper", "ours")])]


def sign_agreement(ours: Table, paper: Table) -> pd.DataFrame:
    """For each Δ column and row: the paper's Δ, ours, and whether their signs agree (NaN if either is)."""
    out = []
    for col in ours.delta.columns:
        for row in ours.delta.index:
            p, o = paper.delta.loc[row, col], ours.delta.loc[row, col]
            agree = (np.sign(p) == np.sign(o)) if math.isfinite(p) and math.isfinite(o) else math.nan
            out.append((row, col, p, o, agree))
    return pd.DataFrame(out, columns=["row", "column", "paper", "ours", "same_sign"])


def side_by_side(ours: Table, paper: Table) -> Rendered:
    """For each mAP and Δ column the paper's value next to ours (means and Δs, with marks); bold: the
    paper's as printed, ours the best per column. F1 and accuracy stay in the two full tables, so the view
    fits a page. If ``ours`` is empty, its message instead."""
    if ours.empty:
        return _message(ours.message)
    if ours.layout != paper.layout:
        raise ValueError(f"cannot compare a {ours.layout!r} table with a {paper.layout!r} table")
    columns = [c for c in display_columns(ours.layout) if c[0] != "Sample F1" and c[0] != "Accuracy"]
    shown = {}
    for name, t in (("paper", paper), ("ours", ours)):
        strings = display_strings(t)
        for col in METRIC_COLUMNS:  # the means only: the ± and parentheses make the view too wide
            strings[col] = [_fmt(v) for v in t.mean[col]]
        shown[name] = strings
    frame = pd.concat(shown, axis=1)
    frame.columns = frame.columns.reorder_levels([1, 2, 0])
    order = pd.MultiIndex.from_tuples([(m, g, s) for m, g in columns for s in ("paper", "ours")])
    frame = frame[order]
    bold = pd.concat({"paper": paper.bold, "ours": ours.bold}, axis=1)
    bold.columns = bold.columns.reorder_levels([1, 2, 0])
    bold = bold[order].to_numpy()
    caption = (f"Paper (Table {paper.number}, {DATASET_NAMES.get(paper.dataset, paper.dataset)}) beside ours "
               f"({DATASET_NAMES.get(ours.dataset, ours.dataset)}), in %: mAP means and Δs (F1 and accuracy: the "
               f"full tables above). Bold: the paper's as printed, ours the best per column. Our marks: "
               f"{TESTS[ours.test] if ours.test else 'none'}.")
    style = frame.style.set_uuid(f"fairpo-vs-{ours.layout}-{ours.dataset}-{paper.number}").set_caption(caption)
    style = style.apply(lambda _: np.where(bold, "font-weight: bold", ""), axis=None)
    style = style.set_table_styles([
        {"selector": "caption", "props": "caption-side: top; text-align: left; font-size: 0.9em;"},
        {"selector": "th, td", "props": "text-align: center; padding: 2px 5px;"},
        {"selector": "th.row_heading", "props": "text-align: left;"},
    ])
    name = f"fairpo-vs-{ours.layout}-{ours.dataset}-{paper.number}"
    return Rendered(html=style.to_html() + csv_link(frame, name), text=f"{caption}\n{frame.to_string()}", styler=style)
