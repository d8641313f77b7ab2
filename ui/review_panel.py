"""The review panel the dock embeds: pick a detection layer, Confirm or Reject the selected
polygons, and walk the unreviewed ones from the lowest score up.

Reject keeps the feature and sets ``review = rejected`` (it becomes a negative training
example); the review style draws rejected polygons dashed and struck through. When the layer
is already in editing mode the changes go into its edit buffer (Undo works, Save keeps them);
otherwise each action is saved at once so a review is never lost by forgetting to save.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable, List, Optional

from qgis.core import (
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsFillSymbol,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsRuleBasedRenderer,
    QgsVectorLayer,
)
from qgis.gui import QgsMapCanvas, QgsMapLayerComboBox
from qgis.PyQt.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ..analysis import review
from .review_tracker import is_detection_layer

# Colours per state; unreviewed keeps the detection style's red outline.
STATE_STYLES = {
    review.UNREVIEWED: {"color": "0,0,0,0", "style": "no", "outline_color": "#ff2d20", "outline_width": "0.6"},
    review.CONFIRMED: {"color": "0,0,0,0", "style": "no", "outline_color": "#1a9641", "outline_width": "0.8"},
    review.EDITED: {"color": "0,0,0,0", "style": "no", "outline_color": "#fdae61", "outline_width": "0.8"},
    review.ADDED: {"color": "0,0,0,0", "style": "no", "outline_color": "#2c7bb6", "outline_width": "0.8"},
    # Struck out: grey diagonal hatching inside a dashed outline, so it is visibly "crossed off".
    review.REJECTED: {
        "color": "120,120,120,255", "style": "b_diagonal", "outline_color": "#787878",
        "outline_style": "dash", "outline_width": "0.5",
    },
}


def apply_review_style(layer: QgsVectorLayer) -> None:
    """A rule per review state (outline colours; rejected dashed and hatched)."""
    root = QgsRuleBasedRenderer.Rule(None)
    for state, props in STATE_STYLES.items():
        symbol = QgsFillSymbol.createSimple(dict(props, outline_width_unit="MM"))
        if state == review.UNREVIEWED:
            expression = f"\"{review.REVIEW_FIELD}\" IS NULL OR \"{review.REVIEW_FIELD}\" NOT IN ('confirmed','edited','added','rejected')"
        else:
            expression = f"\"{review.REVIEW_FIELD}\" = '{state}'"
        root.appendChild(QgsRuleBasedRenderer.Rule(symbol, 0, 0, expression, state))
    layer.setRenderer(QgsRuleBasedRenderer(root))
    layer.triggerRepaint()


def set_review(layer: QgsVectorLayer, fids: Iterable[int], rule) -> int:
    """Apply ``rule(current_state) -> new_state`` to features; returns how many changed.

    Writes only the review field (never orig_score/orig_wkt).
    """
    index = layer.fields().indexOf(review.REVIEW_FIELD)
    if index < 0:
        return 0
    fids = list(fids)
    was_editing = layer.isEditable()
    if not was_editing and not layer.startEditing():
        return 0
    changed = 0
    layer.beginEditCommand("Review")
    for fid in fids:
        current = layer.getFeature(fid).attribute(index)
        new = rule(current)
        if new != current:
            layer.changeAttributeValue(fid, index, new, current)
            changed += 1
    layer.endEditCommand()
    if not was_editing:
        layer.commitChanges()
    layer.triggerRepaint()
    return changed


def unreviewed_in_order(layer: QgsVectorLayer) -> List[int]:
    """Feature ids still unreviewed, lowest score_mean first."""
    names = layer.fields().names()
    request = QgsFeatureRequest().setFlags(QgsFeatureRequest.NoGeometry)
    wanted = [n for n in (review.REVIEW_FIELD, review.SCORE_FIELD) if n in names]
    request.setSubsetOfAttributes(wanted, layer.fields())
    items = []
    for feature in layer.getFeatures(request):
        score = feature.attribute(review.SCORE_FIELD) if review.SCORE_FIELD in names else None
        items.append((feature.id(), feature.attribute(review.REVIEW_FIELD), _plain(score)))
    return review.review_order(items)


def _plain(value):
    # NULL arrives as a QVariant; the pure rules want None.
    try:
        return None if value is None or (hasattr(value, "isNull") and value.isNull()) else float(value)
    except (TypeError, ValueError):
        return None


class ReviewPanel(QWidget):
    """ReviewPanel(parent=None, canvas=None, project=None)."""

    def __init__(
        self, parent: Optional[QWidget] = None, canvas: Optional[QgsMapCanvas] = None, project: Optional[QgsProject] = None
    ) -> None:
        super().__init__(parent)
        self.canvas = canvas
        self.project = project or QgsProject.instance()
        self.layer_combo = QgsMapLayerComboBox(self)
        self.layer_combo.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        if hasattr(self.layer_combo, "setProject"):  # QGIS 3.24+; 3.22 always lists QgsProject.instance()
            self.layer_combo.setProject(self.project)
        self.confirm_button = QPushButton("Confirm", self)
        self.confirm_button.setToolTip("Mark the selected polygons as correct slumps")
        self.reject_button = QPushButton("Reject", self)
        self.reject_button.setToolTip("Mark the selected polygons as not slumps (kept, struck out, used as negatives)")
        self.next_button = QPushButton("Next unreviewed (lowest score first)", self)
        self.style_button = QPushButton("Style by review state", self)
        self.status_label = QLabel(self)
        self.status_label.setWordWrap(True)

        buttons = QHBoxLayout()
        buttons.addWidget(self.confirm_button)
        buttons.addWidget(self.reject_button)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Detection layer", self))
        layout.addWidget(self.layer_combo)
        layout.addLayout(buttons)
        layout.addWidget(self.next_button)
        layout.addWidget(self.style_button)
        layout.addWidget(self.status_label)
        layout.addStretch(1)

        self.confirm_button.clicked.connect(self.confirm_selected)
        self.reject_button.clicked.connect(self.reject_selected)
        self.next_button.clicked.connect(self.next_unreviewed)
        self.style_button.clicked.connect(self._style_current)
        self.layer_combo.layerChanged.connect(self._layer_changed)
        self._layer_changed(self.layer_combo.currentLayer())

    def current_layer(self) -> Optional[QgsVectorLayer]:
        layer = self.layer_combo.currentLayer()
        return layer if is_detection_layer(layer) else None

    def set_layer(self, layer: QgsVectorLayer) -> None:
        self.layer_combo.setLayer(layer)

    def confirm_selected(self) -> int:
        return self._apply(review.after_confirm, "confirmed")

    def reject_selected(self) -> int:
        return self._apply(review.after_reject, "rejected")

    def next_unreviewed(self) -> Optional[int]:
        """Select (and zoom to, with a canvas) the unreviewed polygon with the lowest score."""
        layer = self.current_layer()
        if layer is None:
            self._say("Pick a detection layer (one with a review field).")
            return None
        order = unreviewed_in_order(layer)
        if not order:
            layer.removeSelection()
            self._say("Every polygon has been reviewed.")
            return None
        fid = order[0]
        layer.selectByIds([fid])
        if self.canvas is not None:
            extent = layer.getFeature(fid).geometry().boundingBox()
            transform = QgsCoordinateTransform(layer.crs(), self.canvas.mapSettings().destinationCrs(), self.project)
            extent = transform.transformBoundingBox(extent)
            extent.scale(3.0)  # show the slump with its surroundings
            self.canvas.setExtent(extent)
            self.canvas.refresh()
        self._update_status(f"{len(order)} unreviewed left; showing feature {fid}.")
        return fid

    def _apply(self, rule, verb: str) -> int:
        layer = self.current_layer()
        if layer is None:
            self._say("Pick a detection layer (one with a review field).")
            return 0
        fids = list(layer.selectedFeatureIds())
        if not fids:
            self._say("Select one or more polygons first (or press Next unreviewed).")
            return 0
        changed = set_review(layer, fids, rule)
        self._update_status(f"{changed} polygon(s) {verb}.")
        return changed

    def _style_current(self) -> None:
        layer = self.current_layer()
        if layer is not None:
            apply_review_style(layer)

    def _layer_changed(self, layer) -> None:
        enabled = is_detection_layer(layer)
        for button in (self.confirm_button, self.reject_button, self.next_button, self.style_button):
            button.setEnabled(enabled)
        self._update_status("" if enabled else "Pick a detection layer (one with a review field).")

    def counts(self) -> Counter:
        layer = self.current_layer()
        if layer is None:
            return Counter()
        index = layer.fields().indexOf(review.REVIEW_FIELD)
        request = QgsFeatureRequest().setFlags(QgsFeatureRequest.NoGeometry).setSubsetOfAttributes([index])
        return Counter(review.normalise_state(_state_text(f.attribute(index))) for f in layer.getFeatures(request))

    def _update_status(self, message: str) -> None:
        counts = self.counts()
        summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in review.REVIEW_STATES) if counts else ""
        self._say(" ".join(part for part in (message, summary) if part))

    def _say(self, text: str) -> None:
        self.status_label.setText(text)


def _state_text(value):
    return None if value is None or (hasattr(value, "isNull") and value.isNull()) else value
