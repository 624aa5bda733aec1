"""Small HTML blocks for notebook reports: tables of rows and grids of face thumbnails."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Any

from facekit.images import face_thumbnail


def table_html(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None, *, digits: int = 4) -> str:
    """An HTML table of dict rows (columns: `columns`, default the first row's keys); floats rounded."""
    columns = list(columns or (rows[0].keys() if rows else []))

    def cell(v: Any) -> str:
        return f"{v:.{digits}f}" if isinstance(v, float) else html.escape("" if v is None else str(v))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table class='facekit-table'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def face_grid_html(
    faces: Sequence[tuple[str, Sequence[float] | None, str]], *, size: int = 80, per_row: int = 8
) -> str:
    """A grid of face thumbnails from (image path, bbox, caption) triples, images inlined."""
    cells = []
    for path, bbox, caption in faces:
        data = base64.b64encode(face_thumbnail(path, bbox, size=size)).decode()
        cells.append(
            f"<figure style='margin:2px;text-align:center;font-size:11px;width:{size}px'>"
            f"<img class='facekit-face' src='data:image/jpeg;base64,{data}' width='{size}' height='{size}' "
            f"alt='{html.escape(caption)}'><figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    return f"<div style='display:grid;grid-template-columns:repeat({per_row},{size + 6}px)'>{''.join(cells)}</div>"
