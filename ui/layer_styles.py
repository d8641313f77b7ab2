"""Styles for the detection layers: outline-only slump polygons and a clipped probability ramp.

The polygon style is saved into the GeoPackage (layer_styles table, default style), so the
layer looks the same when a user opens the file again in a new project.
"""
from __future__ import annotations

from qgis.core import (
    QgsColorRampShader,
    QgsFillSymbol,
    QgsPalLayerSettings,
    QgsRasterLayer,
    QgsRasterShader,
    QgsRasterTransparency,
    QgsSingleBandPseudoColorRenderer,
    QgsSingleSymbolRenderer,
    QgsTextBufferSettings,
    QgsTextFormat,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
)
from qgis.PyQt.QtGui import QColor

SLUMP_OUTLINE = "#ff2d20"
STYLE_NAME = "thaw_slumps"
SCORE_FIELD = "score_mean"
# engine/raster_source.py stores the probability as percent (uint8 0..100, 255 = no data).
PROBABILITY_SCALE = 100.0
# Map tip shown when hovering a polygon: what the network thought and how big it is.
MAP_TIP = (
    "<b>Thaw slump [% \"id\" %]</b><br>"
    "score mean [% format_number(\"score_mean\", 2) %], max [% format_number(\"score_max\", 2) %]<br>"
    "area [% format_number(\"area_m2\" / 10000, 2) %] ha, perimeter [% format_number(\"perimeter_m\", 0) %] m<br>"
    "review: [% \"review\" %]"
)


def style_slump_layer(layer: QgsVectorLayer) -> None:
    """Red outline, no fill, the mean score as a small label, details in the map tip."""
    symbol = QgsFillSymbol.createSimple(
        {"color": "0,0,0,0", "style": "no", "outline_color": SLUMP_OUTLINE, "outline_width": "0.6", "outline_width_unit": "MM"}
    )
    layer.setRenderer(QgsSingleSymbolRenderer(symbol))

    text = QgsTextFormat()
    text.setSize(8)
    text.setColor(QColor("#ffffff"))
    buffer = QgsTextBufferSettings()
    buffer.setEnabled(True)
    buffer.setColor(QColor(SLUMP_OUTLINE))
    buffer.setSize(0.8)
    text.setBuffer(buffer)
    labels = QgsPalLayerSettings()
    labels.fieldName = f"format_number(\"{SCORE_FIELD}\", 2)"
    labels.isExpression = True
    labels.setFormat(text)
    layer.setLabeling(QgsVectorLayerSimpleLabeling(labels))
    layer.setLabelsEnabled(True)
    layer.setMapTipTemplate(MAP_TIP)
    layer.setDisplayExpression(f"'slump ' || \"id\" || ' (' || format_number(\"{SCORE_FIELD}\", 2) || ')'")
    layer.triggerRepaint()


def save_style_in_geopackage(layer: QgsVectorLayer) -> str:
    """Store the current style as the layer's default inside its GeoPackage; returns '' or the error."""
    error = layer.saveStyleToDatabase(STYLE_NAME, "Thaw Slump Mapper detection style", True, "")
    return error or ""


def style_probability_layer(layer: QgsRasterLayer, threshold: float, scale: float = PROBABILITY_SCALE) -> None:
    """Yellow-to-red ramp from the threshold up; everything below the threshold is transparent.

    ``threshold`` is a probability 0..1; the raster stores ``probability * scale``.
    """
    low, high = threshold * scale, 1.0 * scale
    ramp = QgsColorRampShader(low, high)
    ramp.setColorRampType(QgsColorRampShader.Interpolated)
    ramp.setColorRampItemList(
        [
            QgsColorRampShader.ColorRampItem(low, QColor(255, 237, 160, 170), f"{threshold:.2f}"),
            QgsColorRampShader.ColorRampItem((low + high) / 2, QColor(253, 141, 60, 200), ""),
            QgsColorRampShader.ColorRampItem(high, QColor(189, 0, 38, 230), "1.00"),
        ]
    )
    ramp.setClip(True)  # values outside threshold..1 get no colour at all
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(ramp)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(low)
    renderer.setClassificationMax(high)
    transparency = QgsRasterTransparency()
    below = QgsRasterTransparency.TransparentSingleValuePixel()
    # Half a step below the threshold: the detection keeps pixels >= threshold, so must the picture.
    below.min, below.max, below.percentTransparent = -1e30, low - 0.5, 100.0
    transparency.setTransparentSingleValuePixelList([below])
    renderer.setRasterTransparency(transparency)
    layer.setRenderer(renderer)
    layer.triggerRepaint()
