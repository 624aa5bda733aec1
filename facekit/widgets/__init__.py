"""The labeling panel: a plain-Python queue of clusters to label (`LabelingQueue`) and its
ipywidgets view (`LabelingPanel`, needs the notebooks extra)."""

from facekit.widgets.labeling_queue import Group, LabelingQueue

__all__ = ["Group", "LabelingPanel", "LabelingQueue"]


def __getattr__(name: str):  # the view imports ipywidgets only when asked for
    if name == "LabelingPanel":
        from facekit.widgets.panel import LabelingPanel

        return LabelingPanel
    raise AttributeError(name)
