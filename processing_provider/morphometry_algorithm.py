"""`thawslump:morphometry`: the Processing front end of analysis.morphometry.

Reads the input layer's features, calls morphometry_for_geometries (the one shared
implementation) and writes a copy with the fields added to a feature sink."""
from __future__ import annotations

import warnings
from typing import Any, Dict, Optional

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFields,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterRasterLayer,
    QgsWkbTypes,
)

from ..qgis_common.layer_adapters import layer_file, qgis_attribute, qgis_fields
from .algorithm_base import (
    OVERWRITE,
    OVERWRITE_HELP,
    SafeVectorOutput,
    ThawSlumpAlgorithm,
    add_overwrite_parameter,
    call_engine,
    feedback_progress,
    raster_input,
)


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
        "(daily mean kWh/m\u00b2, 1 May - 31 Aug, 70 % transmittance). Polygons off the DEM get empty values. "
        "A layer of points or lines, or an empty layer, is refused." + OVERWRITE_HELP
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
        add_overwrite_parameter(self)

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        source = self.parameterAsSource(parameters, self.INPUT, context)
        if source is None:
            raise QgsProcessingException("Choose a polygon layer.")
        dem_path, _ = raster_input(self, parameters, self.DEM, context)
        crs: QgsCoordinateReferenceSystem = source.sourceCrs()
        name = source.sourceName() or "The input layer"
        if QgsWkbTypes.geometryType(source.wkbType()) != QgsWkbTypes.PolygonGeometry:
            raise QgsProcessingException(
                f"{name} is a {QgsWkbTypes.displayString(source.wkbType())} layer, not polygons; give a polygon layer."
            )
        input_layer = self.parameterAsVectorLayer(parameters, self.INPUT, context)
        inputs = [(dem_path, None), layer_file(input_layer)]
        # Every output is checked before the (long) terrain and solar work.
        output = call_engine(
            feedback,
            lambda: SafeVectorOutput(
                self, parameters, self.OUTPUT, context, "morphometry", inputs, self.parameterAsBool(parameters, OVERWRITE, context)
            ),
        )
        features = [f for f in source.getFeatures() if f.hasGeometry()]
        solar = self.parameterAsBool(parameters, self.SOLAR, context)

        def compute():
            from shapely import wkb

            from ..analysis.morphometry import MORPHOMETRY_FIELDS, merged_fields, morphometry_for_geometries
            from ..engine.vector_io import require_polygons

            geoms = [wkb.loads(bytes(f.geometry().asWkb())) for f in features]
            require_polygons(geoms, name)
            records = morphometry_for_geometries(geoms, crs.toWkt(), dem_path, feedback_progress(feedback), solar_radiation=solar)
            return merged_fields, MORPHOMETRY_FIELDS, records

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            merged_fields, morphometry_fields, records = call_engine(feedback, compute)
        for w in caught:
            feedback.pushWarning(str(w.message))
        input_fields = {field.name(): field for field in source.fields()}
        fields = QgsFields()
        for field in merged_fields(input_fields, dict(zip(morphometry_fields, qgis_fields(morphometry_fields)))).values():
            fields.append(field)

        def rows():
            for feature, record in zip(features, records):
                out = QgsFeature(fields)
                geometry = feature.geometry()
                geometry.convertToMultiType()
                out.setGeometry(geometry)
                for key, value in merged_fields({n: feature[n] for n in input_fields}, record).items():
                    out[key] = qgis_attribute(value)
                yield out

        dest = call_engine(feedback, lambda: output.write(fields, QgsWkbTypes.MultiPolygon, crs, rows(), feedback))
        return {self.OUTPUT: dest}
