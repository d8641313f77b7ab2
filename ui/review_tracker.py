"""Keeps a detection layer's ``review`` field in step with the user's own edits (no widgets).

While a detection layer is in the project, a reshaped polygon becomes ``edited`` and a newly
drawn one ``added`` (rules in analysis/review.py). The change goes into the layer's edit
buffer beside the geometry change, so the user's Undo and Save treat them as one edit. The
model's original score and outline (``orig_score``, ``orig_wkt``) are never written here.
"""
from __future__ import annotations

from typing import Dict, Optional

from qgis.core import QgsProject, QgsVectorLayer
from qgis.PyQt.QtCore import QObject

from ..analysis import review


def is_detection_layer(layer: object) -> bool:
    """A vector layer that carries the review field (written by detection)."""
    return isinstance(layer, QgsVectorLayer) and layer.fields().indexOf(review.REVIEW_FIELD) >= 0


class ReviewTracker(QObject):
    """Follows one layer's editing signals and sets its review field."""

    def __init__(self, layer: QgsVectorLayer, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.layer = layer
        self._connected = False
        self._busy = False  # our own attribute writes must not feed back into the handlers

    @property
    def connected(self) -> bool:
        return self._connected

    def start(self) -> None:
        if self._connected or not is_detection_layer(self.layer):
            return
        self.layer.geometryChanged.connect(self._on_geometry_changed)
        self.layer.featureAdded.connect(self._on_feature_added)
        self.layer.willBeDeleted.connect(self.stop)
        self._connected = True

    def stop(self) -> None:
        if not self._connected:
            return
        self._connected = False
        for signal, slot in (
            (self.layer.geometryChanged, self._on_geometry_changed),
            (self.layer.featureAdded, self._on_feature_added),
            (self.layer.willBeDeleted, self.stop),
        ):
            try:
                signal.disconnect(slot)
            except (TypeError, RuntimeError):  # already gone with the layer
                pass

    def _review_index(self) -> int:
        return self.layer.fields().indexOf(review.REVIEW_FIELD)

    def _set_review(self, fid: int, state: str) -> None:
        index = self._review_index()
        if index < 0 or not self.layer.isEditable():
            return
        current = self.layer.getFeature(fid).attribute(index)
        if current == state:
            return
        self._busy = True
        try:
            self.layer.changeAttributeValue(fid, index, state, current)
        finally:
            self._busy = False

    def _on_geometry_changed(self, fid: int, _geometry) -> None:
        if self._busy:
            return
        index = self._review_index()
        if index < 0:
            return
        current = self.layer.getFeature(fid).attribute(index)
        self._set_review(fid, review.after_geometry_change(current))

    def _on_feature_added(self, fid: int) -> None:
        # Features the provider hands back on commit are not new drawings; only buffered
        # additions (negative ids until saved) are the user's.
        if self._busy or fid >= 0:
            return
        self._set_review(fid, review.after_add())


class ProjectReviewTracking(QObject):
    """Attaches a ReviewTracker to every detection layer in a project, and detaches it when
    the layer leaves; the plugin holds one of these from initGui to unload."""

    def __init__(self, project: Optional[QgsProject] = None, parent: Optional[QObject] = None) -> None:
        super().__init__(parent)
        self.project = project or QgsProject.instance()
        self.trackers: Dict[str, ReviewTracker] = {}
        self.project.layersAdded.connect(self._on_layers_added)
        self.project.layerWillBeRemoved.connect(self._on_layer_removed)
        self._on_layers_added(list(self.project.mapLayers().values()))

    def tracker_for(self, layer: QgsVectorLayer) -> Optional[ReviewTracker]:
        return self.trackers.get(layer.id())

    def _on_layers_added(self, layers) -> None:
        for layer in layers:
            if is_detection_layer(layer) and layer.id() not in self.trackers:
                tracker = ReviewTracker(layer, self)
                tracker.start()
                self.trackers[layer.id()] = tracker

    def _on_layer_removed(self, layer_id: str) -> None:
        tracker = self.trackers.pop(layer_id, None)
        if tracker is not None:
            tracker.stop()

    def stop(self) -> None:
        for tracker in self.trackers.values():
            tracker.stop()
        self.trackers.clear()
        for signal, slot in (
            (self.project.layersAdded, self._on_layers_added),
            (self.project.layerWillBeRemoved, self._on_layer_removed),
        ):
            try:
                signal.disconnect(slot)
            except (TypeError, RuntimeError):
                pass
