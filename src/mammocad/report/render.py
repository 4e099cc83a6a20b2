"""Write the report: one self-contained HTML page (Jinja2 template, images as base64 data URIs, no
external CSS or JavaScript: it opens from disk, offline) and the same tables as CSV files and
one Markdown file beside it::

    <stem>.html            the page
    <stem>.md              every table, in Markdown
    <stem>_tables/<key>.csv  every table, numbers as numbers (empty cell: see the page's wording)
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mammocad import DISCLAIMER, __version__
from mammocad.report.collect import Section, Table
from mammocad.report.paper import load_paper
from mammocad.utils.atomic import write_csv, write_text
from mammocad.utils.provenance import now_iso


def _cell(value: Any, missing: str) -> str:
    """A table cell as text: floats to 3 decimals, an empty value (None, NaN, "") as ``missing``."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return missing
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def formatted(table: Table) -> pd.DataFrame:
    """The table as display text (what the HTML and Markdown show)."""
    return pd.DataFrame({column: [_cell(v, table.missing.get(column, "n/a")) for v in table.frame[column]]
                         for column in table.frame.columns}, columns=table.frame.columns)


def data_uri(path: Path) -> str:
    """A PNG file as a ``data:image/png;base64,...`` URI."""
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _markdown(title: str, sections: Sequence[Section]) -> str:
    parts = [f"# {title}", "", f"> {DISCLAIMER}", ""]
    for section in sections:
        if not section.tables:
            continue
        parts += [f"## {section.title}", ""]
        for table in section.tables:
            parts += [f"**{table.title}**", "", formatted(table).to_markdown(index=False, disable_numparse=True), ""]
    return "\n".join(parts)


def render_html(title: str, root: Path, sections: Sequence[Section]) -> str:
    """The page's HTML for ``sections`` (images read and embedded now)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("mammocad.report", "templates"), autoescape=select_autoescape(),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["data_uri"] = data_uri
    env.filters["formatted"] = formatted
    return env.get_template("report.html.j2").render(
        title=title, root=str(root), sections=sections, disclaimer=DISCLAIMER, paper_source=load_paper().source,
        version=__version__, created=now_iso())


def write_report(root: str | Path, sections: Sequence[Section], out: str | Path,
                 title: str = "mammocad report") -> Path:
    """Write ``out`` (HTML), ``out``'s ``.md`` and ``_tables/`` beside it (see the module docstring); returns ``out``."""
    root, out = Path(root), Path(out)
    tables_dir = out.with_name(f"{out.stem}_tables")
    for section in sections:
        for table in section.tables:
            write_csv(tables_dir / f"{table.key}.csv", table.frame)
    write_text(out.with_suffix(".md"), _markdown(title, sections))
    write_text(out, render_html(title, root, sections))
    return out
