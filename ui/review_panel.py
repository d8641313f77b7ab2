"""The review panel the dock embeds: pick a detection layer, Confirm or Reject the selected
polygons, and walk the unreviewed ones from the lowest score up.

Reject keeps the feature and sets ``review = rejected`` (it becomes a negative training
example); the review style draws rejected polygons dashed and struck through. When the layer
is already in editing mode the changes go into its edit buffer (Undo works, Save keeps them);
otherwise each action is saved at once so a review is never lost by forgetting to save.

The review-to-model loop lives here too: the current slump's score, area and state; keys
C (confirm), R (reject), N (next unreviewed), P (previous), each zooming to the slump;
progress (reviewed / total), read from the layer's review field (so it survives closing the
project) with the reviewed layer remembered in the project; Export training labels... for
the layer and its image, then Fine-tune on them... with the chip folder and checkpoint filled in.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, List, Optional

from qgis.core import (
    QgsCoordinateTransform,
    QgsFeatureRequest,
    QgsFillSymbol,
    QgsMapLayerProxyModel,
    QgsProject,
    QgsRasterLayer,
    QgsRuleBasedRenderer,
    QgsVectorLayer,
)
from qgis.gui import QgsMapCanvas, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QKeySequence
from qgis.PyQt.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QShortcut, QVBoxLayout, QWidget

from ..analysis import review
from ..qgis_common.layer_adapters import layer_file
from .follow_up import TRAIN_ALGORITHM, open_algorithm_dialog
from .review_tracker import is_detection_layer

# The reviewed layer is remembered in the project file under this scope.
PROJECT_SCOPE = "thaw_slump_mapper"
PROJECT_KEY = "review_layer"
# Single keys, active only while the review tab has focus (QGIS's own shortcuts stay intact).
SHORTCUTS = {"confirm": "C", "reject": "R", "next": "N", "previous": "P"}
MIN_VIEW_M = 600.0  # narrowest view around a slump, in metres

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
        self, parent: Optional[QWidget] = None, canvas: Optional[QgsMapCanvas] = None, project: Optional[QgsProject] = None,
        checkpoint_path: Optional[Callable[[], str]] = None,
    ) -> None:
        super().__init__(parent)
        self.canvas = canvas
        self.project = project or QgsProject.instance()
        self.checkpoint_path = checkpoint_path or (lambda: "")
        self.history: List[int] = []  # features shown, for Previous
        self.current_fid: Optional[int] = None
        self.last_export: Optional[str] = None
        self._build_widgets()
        self._connect()
        self._layer_changed(self.layer_combo.currentLayer())
        self.restore_from_project()

    def _build_widgets(self) -> None:
        self.layer_combo = QgsMapLayerComboBox(self)
        self.layer_combo.setFilters(QgsMapLayerProxyModel.PolygonLayer)
        if hasattr(self.layer_combo, "setProject"):  # QGIS 3.24+; 3.22 always lists QgsProject.instance()
            self.layer_combo.setProject(self.project)
        self.confirm_button = QPushButton("Confirm", self)
        self.confirm_button.setToolTip("Mark the selected polygons as correct slumps (key C: confirm and go to the next)")
        self.reject_button = QPushButton("Reject", self)
        self.reject_button.setToolTip(
            "Mark the selected polygons as not slumps (kept, struck out, used as negatives; key R: reject and go to the next)")
        self.next_button = QPushButton("Next unreviewed (lowest score first)", self)
        self.next_button.setToolTip("Select and zoom to the unreviewed slump with the lowest score (key N)")
        self.previous_button = QPushButton("Previous", self)
        self.previous_button.setToolTip("Back to the slump shown before (key P)")
        self.style_button = QPushButton("Style by review state", self)
        self.detail_label = QLabel(self)
        self.detail_label.setWordWrap(True)
        self.progress_bar = QProgressBar(self)
        self.progress_bar.setFormat("%v / %m reviewed")
        self.export_button = QPushButton("Export training labels...", self)
        self.export_button.setToolTip("Training chips from the reviewed layer and its image (thawslump:export_labels)")
        self.fine_tune_button = QPushButton("Fine-tune on them...", self)
        self.fine_tune_button.setToolTip("Fine-tune the dock's checkpoint on the exported chips (thawslump:train; needs torch)")
        self.fine_tune_button.setEnabled(False)
        self.status_label = QLabel(self)
        self.status_label.setWordWrap(True)

        decide = QHBoxLayout()
        decide.addWidget(self.confirm_button)
        decide.addWidget(self.reject_button)
        walk = QHBoxLayout()
        walk.addWidget(self.previous_button)
        walk.addWidget(self.next_button, 1)
        loop = QHBoxLayout()
        loop.addWidget(self.export_button)
        loop.addWidget(self.fine_tune_button)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Detection layer", self))
        layout.addWidget(self.layer_combo)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.detail_label)
        layout.addLayout(decide)
        layout.addLayout(walk)
        layout.addWidget(self.style_button)
        layout.addLayout(loop)
        layout.addWidget(self.status_label)
        layout.addStretch(1)

    def _connect(self) -> None:
        self.confirm_button.clicked.connect(self.confirm_selected)
        self.reject_button.clicked.connect(self.reject_selected)
        self.next_button.clicked.connect(self.next_unreviewed)
        self.previous_button.clicked.connect(self.previous)
        self.style_button.clicked.connect(self._style_current)
        self.export_button.clicked.connect(self.open_export_labels)
        self.fine_tune_button.clicked.connect(self.open_fine_tune)
        self.layer_combo.layerChanged.connect(self._layer_changed)
        self.project.readProject.connect(self._project_read)  # a bound slot: dropped with the panel
        self.shortcuts = {}
        for action, slot in (("confirm", self.confirm_and_next), ("reject", self.reject_and_next),
                             ("next", self.next_unreviewed), ("previous", self.previous)):
            shortcut = QShortcut(QKeySequence(SHORTCUTS[action]), self)
            shortcut.setContext(Qt.WidgetWithChildrenShortcut)
            shortcut.activated.connect(slot)
            self.shortcuts[action] = shortcut

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
        self.show_feature(fid)
        self._update_status(f"{len(order)} unreviewed left; showing feature {fid}.")
        return fid

    def show_feature(self, fid: int, remember: bool = True) -> None:
        """Select the slump, zoom to it (with a canvas) and show its score, area and state."""
        layer = self.current_layer()
        if layer is None:
            return
        layer.selectByIds([fid])
        if remember and (not self.history or self.history[-1] != fid):
            self.history.append(fid)
        self.current_fid = fid
        if self.canvas is not None:
            extent = layer.getFeature(fid).geometry().boundingBox()
            transform = QgsCoordinateTransform(layer.crs(), self.canvas.mapSettings().destinationCrs(), self.project)
            extent = transform.transformBoundingBox(extent)
            extent.scale(3.0)  # show the slump with its surroundings
            if not self.canvas.mapSettings().destinationCrs().isGeographic() and extent.width() < MIN_VIEW_M:
                extent.scale(MIN_VIEW_M / max(extent.width(), 1e-9))  # small slumps: enough land to judge them
            self.canvas.setExtent(extent)
            self.canvas.refresh()
        self._show_details(layer, fid)

    def previous(self) -> Optional[int]:
        """Back to the slump shown before the current one."""
        if len(self.history) < 2:
            self._say("No earlier slump in this review session.")
            return None
        self.history.pop()
        fid = self.history[-1]
        self.show_feature(fid, remember=False)
        return fid

    def confirm_and_next(self) -> Optional[int]:
        self.confirm_selected()
        return self.next_unreviewed()

    def reject_and_next(self) -> Optional[int]:
        self.reject_selected()
        return self.next_unreviewed()

    def _show_details(self, layer: QgsVectorLayer, fid: int) -> None:
        feature = layer.getFeature(fid)
        names = layer.fields().names()
        score = _plain(feature.attribute(review.SCORE_FIELD)) if review.SCORE_FIELD in names else None
        state = review.normalise_state(_state_text(feature.attribute(review.REVIEW_FIELD)))
        area_ha = feature.geometry().area() / 10_000 if not layer.crs().isGeographic() else None
        if "area_m2" in names and _plain(feature.attribute("area_m2")) is not None:
            area_ha = _plain(feature.attribute("area_m2")) / 10_000
        parts = [f"Slump {feature.attribute('id') if 'id' in names else fid}",
                 f"score {score:.2f}" if score is not None else "no score",
                 f"{area_ha:.2f} ha" if area_ha is not None else "",
                 state]
        self.detail_label.setText(" \u00b7 ".join(p for p in parts if p))

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
        if self.current_fid in fids:
            self._show_details(layer, self.current_fid)
        self._update_status(f"{changed} polygon(s) {verb}.")
        return changed

    def _style_current(self) -> None:
        layer = self.current_layer()
        if layer is not None:
            apply_review_style(layer)

    def _layer_changed(self, layer) -> None:
        enabled = is_detection_layer(layer)
        for button in (self.confirm_button, self.reject_button, self.next_button, self.previous_button,
                       self.style_button, self.export_button):
            button.setEnabled(enabled)
        self.history, self.current_fid = [], None
        self.detail_label.setText("")
        if enabled:
            self.project.writeEntry(PROJECT_SCOPE, PROJECT_KEY, layer.id())
        self._update_status("" if enabled else "Pick a detection layer (one with a review field).")

    def _project_read(self, *_: Any) -> None:
        self.restore_from_project()

    def restore_from_project(self) -> None:
        """Select the layer reviewed last time this project was saved (its states are in the layer)."""
        layer_id, found = self.project.readEntry(PROJECT_SCOPE, PROJECT_KEY, "")
        layer = self.project.mapLayer(layer_id) if found and layer_id else None
        if layer is not None and is_detection_layer(layer):
            self.set_layer(layer)
            self._update_status("Review resumed.")

    def progress(self) -> tuple:
        """(reviewed, total) of the current layer."""
        counts = self.counts()
        total = sum(counts.values())
        return total - counts.get(review.UNREVIEWED, 0), total

    # ------------------------------------------------------------------ review -> model
    def image_layer(self) -> Optional[QgsRasterLayer]:
        """The raster the detections came from: the project layer whose file the `source` field names."""
        layer = self.current_layer()
        if layer is None or "source" not in layer.fields().names():
            return None
        sources = {str(f.attribute("source")) for f in layer.getFeatures(QgsFeatureRequest().setFlags(QgsFeatureRequest.NoGeometry))}
        for candidate in self.project.mapLayers().values():
            if isinstance(candidate, QgsRasterLayer):
                path, _ = layer_file(candidate)  # None unless a GDAL file
                if path and Path(path).name in sources:
                    return candidate
        return None

    def export_parameters(self) -> dict:
        layer = self.current_layer()
        parameters: dict = {}
        if layer is None:
            return parameters
        parameters["LABELS"] = layer
        image = self.image_layer()
        if image is not None:
            parameters["IMAGE"] = image
        if self.checkpoint_path():  # chips at the checkpoint's pixel size
            parameters["CHECKPOINT"] = self.checkpoint_path()
        path, _ = layer_file(layer)
        if path:
            parameters["OUTPUT"] = str(Path(path).with_name(f"{Path(path).stem}_training_chips"))
        return parameters

    def open_export_labels(self) -> Any:
        """The Export training labels dialog, filled in; its folder then feeds Fine-tune."""
        dialog = open_algorithm_dialog("thawslump:export_labels", self.export_parameters(), self._say)
        if dialog is not None and hasattr(dialog, "algorithmFinished"):
            dialog.algorithmFinished.connect(lambda ok, results: self.export_finished(ok, results))
        return dialog

    def export_finished(self, ok: bool, results: dict) -> None:
        folder = (results or {}).get("OUTPUT")
        if ok and folder:
            self.last_export = str(folder)
            self.fine_tune_button.setEnabled(True)
            self._say(f"Training chips written to {folder}; Fine-tune on them... is ready.")

    def fine_tune_parameters(self) -> dict:
        parameters: dict = {"DATA": self.last_export} if self.last_export else {}
        base = self.checkpoint_path()
        if base:
            parameters["BASE"] = base
        return parameters

    def open_fine_tune(self) -> Any:
        from . import dependency_check

        if dependency_check.missing_full_packages():
            self._say("Fine-tuning needs torch: use Install torch... in the Detect tab first. " + dependency_check.FULL_NOTE)
            return None
        return open_algorithm_dialog(TRAIN_ALGORITHM, self.fine_tune_parameters(), self._say)

    def counts(self) -> Counter:
        layer = self.current_layer()
        if layer is None:
            return Counter()
        index = layer.fields().indexOf(review.REVIEW_FIELD)
        request = QgsFeatureRequest().setFlags(QgsFeatureRequest.NoGeometry).setSubsetOfAttributes([index])
        return Counter(review.normalise_state(_state_text(f.attribute(index))) for f in layer.getFeatures(request))

    def _update_status(self, message: str) -> None:
        done, total = self.progress()
        self.progress_bar.setMaximum(max(total, 1))
        self.progress_bar.setValue(done)
        counts = self.counts()
        summary = ", ".join(f"{counts.get(s, 0)} {s}" for s in review.REVIEW_STATES) if counts else ""
        self._say(" ".join(part for part in (message, summary) if part))

    def _say(self, text: str) -> None:
        self.status_label.setText(text)


def _state_text(value):
    return None if value is None or (hasattr(value, "isNull") and value.isNull()) else value
