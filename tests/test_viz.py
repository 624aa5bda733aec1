"""Plot data and figures (no kernel, no UMAP: coordinates given), HTML blocks, and the report index."""

from __future__ import annotations

import numpy as np
import pytest

from facekit.dual import DualModeClusterer
from facekit.errors import ReportError
from facekit.reports import parse_grid
from facekit.store import schema as S
from facekit.viz import embedding_map_data, embedding_map_figure, iteration_curves, table_html, threshold_curves
from facekit.viz.embedding_map import KNOWN, NOISE, UNKNOWN

from .test_dual import faces_of, label


def test_map_data_groups_faces_and_the_figure_keeps_noise_apart(store):
    label(store, "Colin", faces_of(store, "Colin_Powell")[:3])
    label(store, "Tony", faces_of(store, "Tony_Blair")[:3])
    DualModeClusterer(store).cluster_all_faces()
    faces = store.scroll_all()
    xy = np.random.default_rng(0).normal(size=(len(faces.ids), 2)).astype(np.float32)
    names = {p.person_id: p.name for p in store.list_persons()}
    data = embedding_map_data(faces, names, coordinates=xy, thumbnail_size=32)
    assert len(data) == len(faces.ids) and sum(data.counts().values()) == len(faces.ids)
    assert {"Colin", "Tony"} <= set(data.groups) and data.counts()[KNOWN] >= 6 and data.counts()[UNKNOWN] > 0
    sprite = data.sprite
    assert sprite is not None and sprite.data_uri.startswith("data:image/webp;base64,") and sprite.tile == 32
    assert len(sprite.tiles) == len(data) and len(set(sprite.tiles.tolist())) == len(data)  # one face, one tile
    for kind, group, p in zip(data.kinds, data.groups, faces.payloads, strict=True):
        assert (kind == NOISE) == (group == NOISE) == (not p.get(S.PERSON_ID) and not S.is_group(p.get(S.CLUSTER_ID)))
    fig = embedding_map_figure(data)
    names_shown = [t.name for t in fig.data]
    assert any(n.startswith("Colin (") for n in names_shown)
    assert sum(len(t.x) for t in fig.data) == len(data)  # every face drawn exactly once
    for trace in fig.data:
        assert all(0 <= c[0] < len(data) for c in trace.customdata)  # a tile of the sprite
    with pytest.raises(ValueError, match="coordinates for"):
        embedding_map_data(faces, names, coordinates=xy[:3])


def test_curves_and_tables():
    rows = [
        {"person_threshold": 0.95, "calibrated": True, "precision": 0.99, "recall": 0.7, "false_accept": 0.01,
         "bcubed_f": 0.9, "unknown_bcubed_f": 0.91},
        {"person_threshold": 0.94, "calibrated": False, "precision": 0.9, "recall": 0.8, "false_accept": 0.1,
         "bcubed_f": 0.85, "unknown_bcubed_f": 0.88},
        {"person_threshold": 0.96, "calibrated": False, "precision": 0.996, "recall": 0.6, "false_accept": 0.001,
         "bcubed_f": 0.86, "unknown_bcubed_f": 0.9},
    ]  # fmt: skip
    fig = threshold_curves(rows, recommended=rows[2], target_precision=0.995)
    assert list(fig.data[0].x) == [0.94, 0.96] and fig.data[-1].name.startswith("calibrated")
    records = [{"iteration": i, "before": {"assignment": {"recall": 0.5 + i / 10}}, "after": None} for i in (1, 2)]
    curves = iteration_curves(records)
    assert list(curves.data[0].y) == [0.6, 0.7] and list(curves.data[1].y) == [None, None]
    page = table_html([{"a": 0.123456, "b": "<x>"}])
    assert "0.1235" in page and "&lt;x&gt;" in page


def test_grid_specs():
    assert parse_grid(["unknown_min_size=2,3", "m=cw"]) == {"unknown_min_size": [2, 3], "m": ["cw"]}
    with pytest.raises(ReportError, match="NAME=V1,V2"):
        parse_grid(["oops"])
