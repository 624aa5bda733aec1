"""Face thumbnails packed into one image (a sprite sheet) that a report carries once.

A map of 3,000 faces with a data: URI per point made a 12.8 MB report: every tiny JPEG carries its own
headers, and the figure JSON held them twice. One WebP grid of small tiles costs a few hundred bytes a
face; the same face (photo and box) gets one tile, and the hover script cuts a point's tile out of it.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from facekit.images import face_thumbnail

COLUMNS = 64


@dataclass(frozen=True)
class Sprite:
    """`data_uri`: the sheet (WebP), `tile` pixels a side, `columns` tiles a row; `tiles[i]`: face i's tile."""

    data_uri: str
    tile: int
    columns: int
    tiles: np.ndarray


def face_sprite(
    faces: Sequence[tuple[str, Sequence[float] | None]],
    *,
    tile: int = 40,
    max_bytes: int = 550_000,
    quality: int = 60,
) -> Sprite:
    """One sheet of the faces' thumbnails ((image path, bbox) each); a face seen twice gets one tile.
    Tiles shrink (by 2 px, to 16 at least) until the sheet's data: URI fits `max_bytes`.

    >>> import tempfile, pathlib
    >>> from PIL import Image
    >>> path = str(pathlib.Path(tempfile.mkdtemp()) / "a.png")
    >>> Image.new("RGB", (50, 50), (200, 30, 30)).save(path)
    >>> s = face_sprite([(path, None), (path, None), (path, (0, 0, 20, 20))], tile=16)
    >>> s.tiles.tolist(), s.data_uri.startswith("data:image/webp;base64,")
    ([0, 0, 1], True)
    """
    index: dict[tuple[str, tuple[float, ...] | None], int] = {}
    tiles = np.empty(len(faces), dtype=np.int32)
    for i, (path, bbox) in enumerate(faces):
        key = (str(path), None if bbox is None else tuple(round(float(v), 1) for v in bbox))
        tiles[i] = index.setdefault(key, len(index))
    thumbs = [Image.open(io.BytesIO(face_thumbnail(path, bbox, size=tile))) for path, bbox in index]
    columns = max(1, min(COLUMNS, len(index)))
    while True:
        uri = _sheet(thumbs, tile, columns, quality)
        if len(uri) <= max_bytes or tile <= 16:
            return Sprite(uri, tile, columns, tiles)
        tile -= 2


def _sheet(thumbs: list[Image.Image], tile: int, columns: int, quality: int) -> str:
    sheet = Image.new("RGB", (columns * tile, -(-len(thumbs) // columns) * tile), (238, 238, 238))
    for t, thumb in enumerate(thumbs):
        sheet.paste(thumb.resize((tile, tile), Image.LANCZOS), ((t % columns) * tile, (t // columns) * tile))
    out = io.BytesIO()
    sheet.save(out, format="WEBP", quality=quality, method=6)
    return "data:image/webp;base64," + base64.b64encode(out.getvalue()).decode()
