"""`thawslump:morphometry`: the Processing front end of analysis.morphometry.

Reads the input layer's features, calls morphometry_for_geometries (the one shared
implementation) and writes a copy with the fields added to a feature sink."""
from __future__ import annotations

import warnings
from typing import Any, Dict, Optional

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsFields,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterRasterLayer,
    QgsWkbTypes,
)

from .algorithm_base import ThawSlumpAlgorithm, call_engine, feedback_progress, qgis_attribute, qgis_fields, raster_file_path


class MorphometryAlgorithm(ThawSlumpAlgorithm):
    NAME = "morphometry"
    DISPLAY_NAME = "Slump morphometry"
    GROUP = "Analysis"
    GROUP_ID = "analysis"
    HELP = (
        "Adds shape fields (area, perimeter, circularity 4\u03c0A/P\u00b2, length, width, elongation, "
        "orientation, solidity, holes) in true metres and, with a DEM in any CRS, terrain fields: elevation, "
        "relief, slope (Zevenbergen & Thorne, as SAGA), circular mean aspect, facing, northness, TPI with a "
        "100 m radius (metres and standardised as SAGA's) and potential incoming solar radiation "
        "(daily mean kWh/m\u00b2, 1 May - 31 Aug, 70 % transmittance). Polygons off the DEM get empty values."
    )
    INPUT = "INPUT"
    DEM = "DEM"
    SOLAR = "SOLAR"
    OUTPUT = "OUTPUT"

    def initAlgorithm(self, config: Optional[Dict[str, Any]] = None) -> None:  # noqa: N802
        self.addParameter(QgsProcessingParameterFeatureSource(self.INPUT, "Slump polygons", [QgsProcessing.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterRasterLayer(self.DEM, "DEM (optional)", optional=True))
        self.addParameter(QgsProcessingParameterBoolean(self.SOLAR, "Compute solar radiation (slow)", defaultValue=True))
        self.addParameter(QgsProcessingParameterFeatureSink(self.OUTPUT, "Slumps with morphometry", QgsProcessing.TypeVectorPolygon))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from shapely import wkb

        from ..analysis.morphometry import MORPHOMETRY_FIELDS, morphometry_for_geometries

        source = self.parameterAsSource(parameters, self.INPUT, context)
        if source is None:
            raise QgsProcessingException("Choose a polygon layer.")
        dem_layer = self.parameterAsRasterLayer(parameters, self.DEM, context)
        dem_path = raster_file_path(dem_layer) if dem_layer is not None else None
        crs: QgsCoordinateReferenceSystem = source.sourceCrs()
        features = [f for f in source.getFeatures() if f.hasGeometry()]
        geoms = [wkb.loads(bytes(f.geometry().asWkb())) for f in features]
        solar = self.parameterAsBool(parameters, self.SOLAR, context)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            records = call_engine(
                feedback, lambda: morphometry_for_geometries(geoms, crs.toWkt(), dem_path, feedback_progress(feedback), solar_radiation=solar)
            )
        for w in caught:
            feedback.pushWarning(str(w.message))
        if records is None:
            return {}
        fields = QgsFields()
        added = qgis_fields(MORPHOMETRY_FIELDS)
        for field in source.fields():
            if field.name() not in MORPHOMETRY_FIELDS:
                fields.append(field)
        for field in added:
            fields.append(field)
        sink, dest_id = self.parameterAsSink(parameters, self.OUTPUT, context, fields, QgsWkbTypes.MultiPolygon, crs)
        for feature, record in zip(features, records):
            out = QgsFeature(fields)
            geometry = feature.geometry()
            geometry.convertToMultiType()
            out.setGeometry(geometry)
            for field in source.fields():
                if field.name() not in MORPHOMETRY_FIELDS:
                    out[field.name()] = feature[field.name()]
            for name, value in record.items():
                out[name] = qgis_attribute(value)
            sink.addFeature(out, QgsFeatureSink.FastInsert)
        return {self.OUTPUT: dest_id}
