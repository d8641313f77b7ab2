"""Styles for the change layers: latest outlines coloured by change class, growth areas in red,
slumps not seen again in grey. Used by thawslump:change when its layers are loaded, and by the
dock. The colours are the change report's (analysis/change_report.py)."""
from __future__ import annotations

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsFillSymbol,
    QgsRendererCategory,
    QgsSingleSymbolRenderer,
    QgsVectorLayer,
)

from ..analysis.change_report import CLASS_COLOURS, GROWTH_COLOUR

CLASS_FIELD = "change_class"


def _fill(colour: str, alpha: int = 110) -> QgsFillSymbol:
    red, green, blue = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return QgsFillSymbol.createSimple({"color": f"{red},{green},{blue},{alpha}", "outline_color": colour,
                                       "outline_width": "0.5", "outline_width_unit": "MM"})


def style_change_layer(layer: QgsVectorLayer) -> None:
    """One colour per change class (repeat, new, merged, split, not seen again)."""
    categories = [QgsRendererCategory(name, _fill(colour), name.replace("_", " ")) for name, colour in CLASS_COLOURS.items()]
    layer.setRenderer(QgsCategorizedSymbolRenderer(CLASS_FIELD, categories))
    layer.triggerRepaint()


def style_growth_layer(layer: QgsVectorLayer) -> None:
    layer.setRenderer(QgsSingleSymbolRenderer(_fill(GROWTH_COLOUR, 220)))
    layer.triggerRepaint()


def style_for_layer_name(layer: QgsVectorLayer, layer_name: str) -> None:
    """Style a loaded change-output layer by its GeoPackage layer name."""
    if layer_name == "growth_areas":
        style_growth_layer(layer)
    elif layer_name in ("change", "not_seen_again", "change_history"):
        style_change_layer(layer)
