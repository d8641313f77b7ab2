"""thawslump:change in real QGIS 3.22: processing.run, inside a model that filters its output,
and headless through qgis_process.bin."""
from __future__ import annotations

import re

import pytest
from qgis.core import (
    QgsProcessing,
    QgsProcessingModelAlgorithm,
    QgsProcessingModelChildAlgorithm,
    QgsProcessingModelChildParameterSource,
    QgsProcessingModelOutput,
    QgsProcessingModelParameter,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterString,
    QgsVectorLayer,
)
from qgis.PyQt import sip

from thaw_slump_mapper.analysis.change import CHANGE_SCHEMA

from ..change_helpers import EARLIER_DATE, LATER_DATE, build_truth, write_truth
from ..plugin_helpers import register_provider
from .test_qgis_process import _qgis_process, headless_env  # noqa: F401 (fixture)

DATES = f"{EARLIER_DATE},{LATER_DATE}"


@pytest.fixture(scope="module")
def provider(qgis_processing):
    return register_provider()


@pytest.fixture(scope="module")
def truth(shared_data):
    return build_truth(shared_data)


@pytest.fixture(scope="module")
def layers(truth, tmp_path_factory):
    return write_truth(truth, tmp_path_factory.mktemp("change_processing"))


def _layer_facts(uri: str) -> tuple:
    """(valid, feature count, field names) of a layer that is gone again when this returns:
    a QgsVectorLayer that outlives the QGIS application crashes the interpreter at exit."""
    layer = QgsVectorLayer(uri, "probe", "ogr")
    try:
        return layer.isValid(), layer.featureCount(), layer.fields().names()
    finally:
        sip.delete(layer)


def _expected_counts(truth) -> dict:
    return {c: sum(1 for n in truth.later_names if truth.expected_class[n] == c) for c in ("repeat", "new", "merged", "split")}


def test_processing_run_writes_the_named_layers(provider, truth, layers, tmp_path):
    import processing

    output = tmp_path / "change.gpkg"
    result = processing.run("thawslump:change", {"INPUTS": [str(p) for p in layers], "DATES": DATES, "OUTPUT": str(output)})
    counts = _expected_counts(truth)
    assert {name: result[f"N_{name.upper()}"] for name in counts} == counts
    assert result["N_NOT_SEEN_AGAIN"] == len(truth.not_seen)
    grown = [d for d, _ in truth.expected_retreat.values() if d > 0]
    assert result["N_GROWING"] == len(grown) + counts["merged"]  # the merge's bridge reaches out too
    valid, n_change, fields = _layer_facts(result["CHANGE"])
    assert valid and n_change == len(truth.later)
    assert set(CHANGE_SCHEMA) <= set(fields)
    assert _layer_facts(result["NOT_SEEN_AGAIN"])[1] == len(truth.not_seen)
    assert _layer_facts(result["GROWTH_AREAS"])[1] == len(truth.later) - counts["new"]
    # the second run must refuse to replace the layers without OVERWRITE
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="already holds"):
        processing.run("thawslump:change", {"INPUTS": [str(p) for p in layers], "DATES": DATES, "OUTPUT": str(output)})


def _model() -> QgsProcessingModelAlgorithm:
    """layers + dates -> thawslump:change -> native:extractbyattribute (change_class = new)."""
    model = QgsProcessingModelAlgorithm("new_slumps", "tests")
    model.addModelParameter(QgsProcessingParameterMultipleLayers("layers", "layers", QgsProcessing.TypeVectorPolygon),
                            QgsProcessingModelParameter("layers"))
    model.addModelParameter(QgsProcessingParameterString("dates", "dates"), QgsProcessingModelParameter("dates"))
    change = QgsProcessingModelChildAlgorithm("thawslump:change")
    change.setChildId("change")
    change.addParameterSources("INPUTS", [QgsProcessingModelChildParameterSource.fromModelParameter("layers")])
    change.addParameterSources("DATES", [QgsProcessingModelChildParameterSource.fromModelParameter("dates")])
    gpkg = QgsProcessingModelOutput("gpkg")
    gpkg.setChildId("change")
    gpkg.setChildOutputName("OUTPUT")
    change.setModelOutputs({"gpkg": gpkg})
    model.addChildAlgorithm(change)
    extract = QgsProcessingModelChildAlgorithm("native:extractbyattribute")
    extract.setChildId("extract")
    extract.addParameterSources("INPUT", [QgsProcessingModelChildParameterSource.fromChildOutput("change", "CHANGE")])
    for name, value in (("FIELD", "change_class"), ("OPERATOR", 0), ("VALUE", "new")):
        extract.addParameterSources(name, [QgsProcessingModelChildParameterSource.fromStaticValue(value)])
    new_slumps = QgsProcessingModelOutput("new_slumps")
    new_slumps.setChildId("extract")
    new_slumps.setChildOutputName("OUTPUT")
    extract.setModelOutputs({"new_slumps": new_slumps})
    model.addChildAlgorithm(extract)
    return model


def test_change_runs_inside_a_model(provider, truth, layers, tmp_path):
    import processing

    model = _model()
    try:
        result = processing.run(model, {
            "layers": [str(p) for p in layers], "dates": DATES,
            "change:gpkg": str(tmp_path / "model_change.gpkg"), "extract:new_slumps": str(tmp_path / "new.gpkg"),
        })
        new = QgsVectorLayer(result["extract:new_slumps"], "new", "ogr")
        assert new.isValid() and new.featureCount() == _expected_counts(truth)["new"]
    finally:
        # A model built in Python must die while QGIS is alive: destroyed after exitQgis it
        # crashes the interpreter at exit (its child algorithms point into the registry).
        sip.delete(model)


def test_qgis_process_runs_change(headless_env, truth, layers, tmp_path):  # noqa: F811
    output = tmp_path / "headless_change.gpkg"
    ran = _qgis_process(headless_env, "run", "thawslump:change", "--", f"INPUTS={layers[0]}", f"INPUTS={layers[1]}",
                        f"DATES={DATES}", f"OUTPUT={output}")
    assert ran.returncode == 0, (ran.stdout + ran.stderr)[-4000:]
    merged = re.search(r"^N_MERGED:\s*([0-9.]+)\s*$", ran.stdout, re.MULTILINE)
    assert merged and float(merged.group(1)) == _expected_counts(truth)["merged"], ran.stdout[-2000:]
    assert QgsVectorLayer(f"{output}|layername=change", "c", "ogr").featureCount() == len(truth.later)
    missing = _qgis_process(headless_env, "run", "thawslump:change", "--", f"INPUTS={layers[0]}", f"INPUTS={layers[1]}",
                            f"OUTPUT={tmp_path / 'nodates.gpkg'}")
    assert missing.returncode != 0 and "has no date" in missing.stdout + missing.stderr
