"""processing.run("thawslump:detect") in real QGIS 3.22, with a file and a temporary output."""
from __future__ import annotations

import pytest
from qgis.core import QgsProcessingException, QgsRasterLayer, QgsVectorLayer, QgsWkbTypes

from thaw_slump_mapper.engine.detect import DETECTION_SCHEMA

from ..plugin_helpers import CHIP_BANDS, register_provider


@pytest.fixture(scope="module")
def provider(qgis_processing):
    return register_provider()


def _run(params):
    import processing

    return processing.run("thawslump:detect", params)


def test_detect_writes_file_output_and_probability(provider, chip_paths, tiny_checkpoint, tmp_path):
    chip = str(chip_paths[0])
    out = tmp_path / "slumps.gpkg"
    prob = tmp_path / "prob.tif"
    # A low threshold makes the untrained tiny network find something, so the sink gets features.
    result = _run(
        {
            "INPUT": chip, "CHECKPOINT": str(tiny_checkpoint), "BANDS": CHIP_BANDS, "THRESHOLD": 0.05,
            "MIN_AREA": 0, "DEVICE": 1, "OUTPUT": str(out), "PROBABILITY": str(prob),
        }
    )
    assert out.is_file() and prob.is_file()
    assert result["PROBABILITY"] == str(prob)
    layer = QgsVectorLayer(result["OUTPUT"], "slumps", "ogr")
    assert layer.isValid()
    assert QgsWkbTypes.geometryType(layer.wkbType()) == QgsWkbTypes.PolygonGeometry
    assert set(DETECTION_SCHEMA) <= set(layer.fields().names())
    assert layer.featureCount() > 0
    chip_layer = QgsRasterLayer(chip, "chip", "gdal")
    assert layer.crs() == chip_layer.crs()
    feature = next(layer.getFeatures())
    assert 0.05 <= feature["score_mean"] <= 1.0 and feature["area_m2"] > 0
    raster = QgsRasterLayer(str(prob), "p", "gdal")
    assert raster.isValid() and (raster.width(), raster.height()) == (chip_layer.width(), chip_layer.height())


def test_detect_to_temporary_output(provider, chip_paths, tiny_checkpoint):
    result = _run(
        {
            "INPUT": str(chip_paths[1]), "CHECKPOINT": str(tiny_checkpoint), "BANDS": CHIP_BANDS,
            "THRESHOLD": 0.05, "OUTPUT": "TEMPORARY_OUTPUT", "PROBABILITY": "TEMPORARY_OUTPUT",
        }
    )
    layer = result["OUTPUT"]
    assert isinstance(layer, QgsVectorLayer) and layer.isValid()
    assert layer.providerType() == "memory"
    assert layer.featureCount() > 0
    assert set(DETECTION_SCHEMA) <= set(layer.fields().names())
    assert QgsRasterLayer(result["PROBABILITY"], "p", "gdal").isValid()


def test_detect_bad_bands_is_a_processing_error(provider, chip_paths, tiny_checkpoint, tmp_path):
    with pytest.raises(QgsProcessingException, match="band"):
        _run(
            {
                "INPUT": str(chip_paths[0]), "CHECKPOINT": str(tiny_checkpoint), "BANDS": "1,2,9",
                "OUTPUT": str(tmp_path / "x.gpkg"),
            }
        )
    assert not (tmp_path / "x.gpkg").exists()


def test_provider_lists_detect_with_cancel_flag(provider):
    from qgis.core import QgsApplication, QgsProcessingAlgorithm

    algorithm = QgsApplication.processingRegistry().algorithmById("thawslump:detect")
    assert algorithm is not None
    assert algorithm.flags() & QgsProcessingAlgorithm.FlagCanCancel
    names = [p.name() for p in algorithm.parameterDefinitions()]
    for name in ("INPUT", "CHECKPOINT", "BANDS", "EXTENT", "THRESHOLD", "MIN_AREA", "DEVICE", "OUTPUT", "PROBABILITY"):
        assert name in names
