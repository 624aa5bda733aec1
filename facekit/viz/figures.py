"""plotly figures of facekit's data, and `show`, which puts them in notebooks and HTML reports."""

from __future__ import annotations

import base64
import gzip
import json
import uuid
from collections.abc import Sequence
from typing import Any

from facekit.viz.embedding_map import KNOWN, NOISE, UNKNOWN, MapData
from facekit.viz.sprite import Sprite

# labeled groups drawn as their own legend entries; the rest share one trace per kind
LEGEND_GROUPS = 12
PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#17becf", "#bcbd22", "#393b79", "#ad494a", "#637939",
]  # fmt: skip

# shows the hovered face beside the plot: customdata[0] is its tile in the sprite sheet, cut out on a canvas
_THUMBNAIL_SCRIPT = """
var gd = document.getElementById('{plot_id}');
var sheet = new Image();
sheet.src = '__SPRITE__';
var tile = __TILE__, columns = __COLUMNS__;
var canvas = document.createElement('canvas');
canvas.width = canvas.height = tile;
var img = document.createElement('img');
img.className = 'facekit-hover-face';
img.alt = 'hovered face';
img.style.cssText = 'position:absolute;top:8px;right:8px;width:96px;height:96px;border:2px solid #444;'
  + 'background:#eee;z-index:10;display:none;image-rendering:auto';
gd.style.position = 'relative';
gd.appendChild(img);
gd.on('plotly_hover', function (ev) {
  var p = ev.points[0];
  var t = p.customdata ? p.customdata[0] : -1;
  if (t === null || t < 0 || !sheet.complete) { return; }
  canvas.getContext('2d').drawImage(sheet, (t % columns) * tile, Math.floor(t / columns) * tile, tile, tile,
    0, 0, tile, tile);
  img.src = canvas.toDataURL('image/jpeg', 0.9);
  img.style.display = 'block';
});
"""

# plotly.js (4.8 MB -> 2.0 MB as base64) and each figure's JSON travel gzipped and are unpacked by the
# browser (DecompressionStream); every figure waits for plotly.js.
_PLOTLY_LOADER = """<script>
window.facekitUnpack = async function (packed) {
  var bytes = Uint8Array.from(atob(packed), function (c) { return c.charCodeAt(0); });
  var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
  return await new Response(stream).text();
};
window.facekitPlotly = window.facekitUnpack('__PLOTLY_GZ__').then(function (code) {
  (0, eval)(code);
  return window.Plotly;
});
</script>"""

_FIGURE = """<div id="__ID__" class="plotly-graph-div" style="height:__HEIGHT__px; width:100%;"></div>
<script>
window.facekitPlotly.then(function () { return window.facekitUnpack('__FIGURE_GZ__'); }).then(function (text) {
  var fig = JSON.parse(text);
  return Plotly.newPlot('__ID__', fig.data, fig.layout, {"responsive": true});
}).then(function () {
__POST__
});
</script>"""


def _packed(text: str) -> str:
    return base64.b64encode(gzip.compress(text.encode(), 9, mtime=0)).decode()


_plotlyjs_shown = False


def _go():
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise ImportError("plots need plotly: pip install 'facekit[notebooks]'") from None
    return go


def show(fig: Any, *, thumbnails: Sprite | None = None) -> None:
    """Display a figure in a notebook so that it stays interactive in the exported HTML report.

    plotly.js is inlined once per kernel (gzipped, ~2 MB; not once per figure), each figure's JSON
    gzipped too, and nothing is fetched from a CDN, so a report opens offline. JupyterLab renders the
    figure natively; the HTML copy is what nbconvert keeps. With `thumbnails` (a map's
    `MapData.sprite`), hovering a point shows the face.
    """
    global _plotlyjs_shown
    import plotly.io as pio
    from IPython.display import display
    from plotly.offline import get_plotlyjs

    if not _plotlyjs_shown:
        display({"text/html": _PLOTLY_LOADER.replace("__PLOTLY_GZ__", _packed(get_plotlyjs()))}, raw=True)
        _plotlyjs_shown = True
    div_id = f"facekit-plot-{uuid.uuid4().hex[:12]}"
    script = ""
    if thumbnails is not None:
        script = (
            _THUMBNAIL_SCRIPT.replace("{plot_id}", div_id)
            .replace("__SPRITE__", thumbnails.data_uri)
            .replace("__TILE__", str(thumbnails.tile))
            .replace("__COLUMNS__", str(thumbnails.columns))
        )
    spec = pio.to_json(fig, validate=False)
    html = (
        _FIGURE.replace("__ID__", div_id)
        .replace("__HEIGHT__", str(int(fig.layout.height or 450)))
        .replace("__FIGURE_GZ__", _packed(spec))
        .replace("__POST__", script)
    )
    display({"text/html": html, "application/vnd.plotly.v1+json": json.loads(spec)}, raw=True)


def threshold_curves(
    rows: Sequence[dict[str, Any]], *, recommended: dict[str, Any] | None = None, target_precision: float | None = None
) -> Any:
    """Precision, recall, false accept and BCubed F against the person threshold (rows of
    `facekit.evaluation.threshold_sweep`; the calibrated row is drawn as markers)."""
    go = _go()
    swept = sorted((r for r in rows if not r.get("calibrated")), key=lambda r: r["person_threshold"])
    fig = go.Figure()
    series = [
        ("precision", "precision"),
        ("recall", "recall"),
        ("false_accept", "false accept"),
        ("bcubed_f", "BCubed F (all faces)"),
        ("unknown_bcubed_f", "BCubed F (unlabeled people)"),
    ]
    for (key, name), colour in zip(series, PALETTE, strict=False):
        fig.add_trace(
            go.Scatter(
                x=[r["person_threshold"] for r in swept],
                y=[r[key] for r in swept],
                mode="lines+markers",
                name=name,
                line={"color": colour},
            )
        )
    for r in rows:
        if r.get("calibrated"):
            fig.add_trace(
                go.Scatter(
                    x=[r["person_threshold"]] * 3,
                    y=[r["precision"], r["recall"], r["false_accept"]],
                    mode="markers",
                    marker={"symbol": "star", "size": 13, "color": "black"},
                    name="calibrated default (P, R, FA)",
                )
            )
    if recommended is not None:
        fig.add_vline(
            x=recommended["person_threshold"],
            line_dash="dash",
            annotation_text=f"recommended {recommended['person_threshold']:.3f}",
        )
    if target_precision is not None:
        fig.add_hline(y=target_precision, line_dash="dot", annotation_text=f"target precision {target_precision}")
    fig.update_layout(
        title="Dual-mode scores against the person threshold",
        xaxis_title="person threshold (cosine to the person's centroid)",
        yaxis_title="score",
        yaxis_range=[0, 1.02],
        hovermode="x unified",
    )
    return fig


def iteration_curves(records: Sequence[dict[str, Any]]) -> Any:
    """Recall, precision, false accept and unlabeled-people BCubed F before and after each training
    iteration (records of `facekit.training.training_iteration`, with `before` and `after` scores)."""
    go = _go()
    fig = go.Figure()
    its = [r["iteration"] for r in records]

    def metric(stage: str, path: tuple[str, str]) -> list[float | None]:
        out = []
        for r in records:
            block = (r.get(stage) or {}).get(path[0]) or {}
            out.append(block.get(path[1]))
        return out

    series = [
        (("assignment", "recall"), "recall"),
        (("assignment", "precision"), "precision"),
        (("assignment", "false_accept"), "false accept"),
        (("unknown_people_clustering", "bcubed_f"), "BCubed F, unlabeled people"),
    ]
    for (path, name), colour in zip(series, PALETTE, strict=False):
        for stage, dash in (("before", "dot"), ("after", "solid")):
            fig.add_trace(
                go.Scatter(
                    x=its,
                    y=metric(stage, path),
                    mode="lines+markers",
                    name=f"{name} ({stage} training)",
                    line={"color": colour, "dash": dash},
                )
            )
    fig.update_layout(
        title="Accuracy before and after each training iteration",
        xaxis={"title": "iteration", "dtick": 1},
        yaxis={"title": "score", "range": [0, 1.02]},
    )
    return fig


def embedding_map_figure(data: MapData, *, title: str = "Faces (UMAP of the embeddings)") -> Any:
    """A scatter of `data`: the largest people and clusters in their own colours, other known people
    as diamonds, other clusters as circles, noise as small grey crosses; hover names the face."""
    go = _go()
    largest = sorted(
        {(g, k, s) for g, k, s in zip(data.groups, data.kinds, data.group_sizes, strict=True) if k != NOISE},
        key=lambda t: (-t[2], t[0]),
    )[:LEGEND_GROUPS]
    own = {g for g, _, _ in largest}
    fig = go.Figure()

    def add(rows: list[int], name: str, marker: dict[str, Any]) -> None:
        if not rows:
            return
        custom = [[int(data.sprite.tiles[i]) if data.sprite else -1, data.face_ids[i]] for i in rows]
        fig.add_trace(
            go.Scatter(
                x=data.x[rows],
                y=data.y[rows],
                mode="markers",
                name=name,
                marker=marker,
                text=[data.hover[i] for i in rows],
                customdata=custom,
                hovertemplate="%{text}<extra></extra>",
            )
        )

    index = range(len(data))
    add([i for i in index if data.kinds[i] == NOISE], f"noise ({data.counts().get(NOISE, 0)})",
        {"symbol": "x", "size": 4, "color": "#b0b0b0"})  # fmt: skip
    add([i for i in index if data.kinds[i] == UNKNOWN and data.groups[i] not in own], "other unknown clusters",
        {"symbol": "circle", "size": 6, "color": "#7f7f7f", "opacity": 0.7})  # fmt: skip
    add([i for i in index if data.kinds[i] == KNOWN and data.groups[i] not in own], "other known people",
        {"symbol": "diamond", "size": 6, "color": "#555555", "opacity": 0.8})  # fmt: skip
    for (group, kind, size), colour in zip(largest, PALETTE * 2, strict=False):
        symbol = "diamond" if kind == KNOWN else "circle"
        add([i for i in index if data.groups[i] == group], f"{group} ({size})",
            {"symbol": symbol, "size": 9, "color": colour, "line": {"width": 1, "color": "white"}})  # fmt: skip
    fig.update_layout(
        title=title, xaxis={"visible": False}, yaxis={"visible": False}, legend={"itemsizing": "constant"}, height=650
    )
    return fig
