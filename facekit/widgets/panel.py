"""The labeling panel's ipywidgets view over a `LabelingQueue`: a face grid and the edit buttons."""

from __future__ import annotations

import html
from typing import Any

from facekit.images import face_thumbnail
from facekit.store import FaceStore
from facekit.store import schema as S
from facekit.widgets.labeling_queue import LabelingQueue, Order

try:
    import ipywidgets as W
except ImportError:  # pragma: no cover - the extra is missing
    raise ImportError("the labeling panel needs ipywidgets: pip install 'facekit[notebooks]'") from None


class LabelingPanel(W.VBox):
    """Label clusters in a notebook: `display(LabelingPanel(store))`.

    Shows the next cluster (largest first, or `order="uncertain"`) as a grid of faces. Click faces to
    select them; then name the cluster (new or existing person, with completion), merge it with a
    suggested neighbour, mark the selected faces "not this person", split them off, skip, or undo.
    The buttons are attributes (`name_button`, ...) so that code and tests can drive the panel.
    """

    def __init__(self, store: FaceStore, *, order: Order = "largest", max_faces: int = 24, thumb: int = 96) -> None:
        self.queue = LabelingQueue(store, order=order)
        self.max_faces = max_faces
        self.thumb = thumb
        self._thumbs: dict[str, bytes] = {}
        self.header = W.HTML()
        self.grid = W.GridBox(layout=W.Layout(grid_template_columns=f"repeat(8, {thumb + 8}px)", grid_gap="4px"))
        self.face_toggles: list[W.ToggleButton] = []
        self.name_box = W.Combobox(placeholder="name: new or existing person", ensure_option=False)
        self.name_button = W.Button(description="Name", button_style="success", icon="tag")
        self.merge_choice = W.Dropdown(description="merge with", layout=W.Layout(width="340px"))
        self.merge_button = W.Button(description="Merge", icon="compress")
        self.reject_button = W.Button(description="Not this person", button_style="warning", icon="user-times")
        self.split_button = W.Button(description="Split off selected", icon="scissors")
        self.next_button = W.Button(description="Next", icon="forward")
        self.undo_button = W.Button(description="Undo", button_style="danger", icon="undo")
        self.status = W.HTML()
        self.name_button.on_click(lambda _: self._act(lambda: self.queue.name(self.name_box.value)))
        self.name_box.on_submit(lambda _: self._act(lambda: self.queue.name(self.name_box.value)))
        self.merge_button.on_click(lambda _: self._act(self._merge))
        self.reject_button.on_click(lambda _: self._act(lambda: self.queue.reject(self.selected())))
        self.split_button.on_click(lambda _: self._act(lambda: self.queue.split(self.selected() or None)))
        self.next_button.on_click(lambda _: self._act(self.queue.next, edit=False))
        self.undo_button.on_click(lambda _: self._act(self.queue.undo))
        super().__init__(
            [
                self.header,
                self.grid,
                W.HBox([self.name_box, self.name_button]),
                W.HBox([self.merge_choice, self.merge_button]),
                W.HBox([self.reject_button, self.split_button, self.next_button, self.undo_button]),
                self.status,
            ]
        )
        self.render()

    # -- what the user sees -----------------------------------------------------------------------
    def selected(self) -> list[str]:
        """Face ids of the faces clicked in the grid."""
        return [t.face_id for t in self.face_toggles if t.value]  # type: ignore[attr-defined]

    def render(self) -> None:
        """Redraw from the queue's state."""
        group = self.queue.current
        left, total = self.queue.position()
        if group is None:
            self.header.value = f"<h3>Nothing left to label</h3><p>{total} unknown clusters, all skipped or named.</p>"
            self.grid.children, self.face_toggles = (), []
        else:
            shown = group.face_ids[: self.max_faces]
            more = f", {len(group.face_ids) - len(shown)} more not shown" if len(shown) < len(group.face_ids) else ""
            self.header.value = (
                f"<h3>{html.escape(group.title)}</h3><p>{left} of {total} clusters left to label{more}. "
                "Click faces to select them.</p>"
            )
            cells, self.face_toggles = [], []
            for fid in shown:
                toggle = W.ToggleButton(description="select", tooltip=fid, layout=W.Layout(width=f"{self.thumb}px"))
                toggle.face_id = fid  # type: ignore[attr-defined]
                self.face_toggles.append(toggle)
                cells.append(W.VBox([W.Image(value=self._thumb(fid), format="jpeg", width=self.thumb), toggle]))
            self.grid.children = cells
        names = self.queue.person_names()
        self.name_box.options = names
        is_cluster = group is not None and group.person is None
        options = [(f"{cid} (cosine {sim:.3f})", cid) for cid, sim in self.queue.suggestions()] if is_cluster else []
        self.merge_choice.options = options
        self.merge_choice.value = options[0][1] if options else None
        for button in (self.name_button, self.merge_button, self.split_button):
            button.disabled = not is_cluster
        self.merge_button.disabled = not options
        log = "".join(f"<li>{html.escape(d)}</li>" for d in self.queue.done[-5:])
        self.status.value = f"<ul>{log}</ul>" if log else ""

    def _thumb(self, face_id: str) -> bytes:
        if face_id not in self._thumbs:
            face = self.queue.store.payloads([face_id], fields=[S.IMAGE_PATH, S.BBOX])[face_id]
            self._thumbs[face_id] = face_thumbnail(face.get(S.IMAGE_PATH, ""), face.get(S.BBOX), size=self.thumb)
        return self._thumbs[face_id]

    # -- actions ----------------------------------------------------------------------------------
    def _merge(self) -> None:
        if not self.merge_choice.value:
            raise ValueError("no neighbour cluster to merge with")
        self.queue.merge(self.merge_choice.value)

    def _act(self, action: Any, *, edit: bool = True) -> None:
        """Run one action; an error is shown in the panel instead of raised into the event loop."""
        try:
            action()
        except Exception as exc:  # shown to the user, who can fix the input and retry
            self.render()
            self.status.value = f"<p style='color:#b00'>{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</p>"
            return
        if edit:
            self.name_box.value = ""
        self.render()
