"""Help where QGIS users look: every registered thawslump algorithm (and the shipped model) has a
short help, a help URL into docs/PROCESSING.md, parameter descriptions with units and
defaults; metadata.txt has what plugins.qgis.org shows."""
from __future__ import annotations

import configparser
from pathlib import Path

import pytest
from qgis.core import QgsProcessingParameterEnum, QgsProcessingParameterNumber, QgsProcessingParameterVectorDestination

from thaw_slump_mapper.processing_provider.parameter_help import PARAMETER_UNITS, REPOSITORY_URL, described, docs_url

from ..plugin_helpers import register_provider

REPO = Path(__file__).resolve().parents[2]
DOCS = (REPO / "docs" / "PROCESSING.md").read_text()


@pytest.fixture(scope="module")
def algorithms(qgis_app):
    provider = register_provider()
    found = {algorithm.name(): algorithm for algorithm in provider.algorithms()}
    assert {"detect", "morphometry", "report", "detect_describe_report"} <= set(found)
    return found


def test_every_algorithm_has_help_and_a_docs_link(algorithms):
    for name, algorithm in algorithms.items():
        assert len(algorithm.shortHelpString().strip()) > 40, name
        assert algorithm.helpUrl() == docs_url(name), name
        assert f"\n## {name}\n" in DOCS, f"docs/PROCESSING.md has no section for {name}: run `make processing-docs`"


def test_parameters_say_their_defaults_and_units(algorithms):
    for name, algorithm in algorithms.items():
        for definition in algorithm.parameterDefinitions():
            text = definition.description().lower()
            default = definition.defaultValue()
            if not definition.isDestination() and default not in (None, "") and definition.type() != "file":
                assert "default" in text or "empty" in text, f"{name}.{definition.name()}: {text!r}"
    for (name, parameter), unit in PARAMETER_UNITS.items():
        definition = algorithms[name].parameterDefinition(parameter)
        assert definition is not None, f"{name} has no parameter {parameter} any more: update parameter_help.py"
        assert unit in definition.description(), (name, parameter)


def test_described_adds_what_is_missing_only():
    assert described("x", QgsProcessingParameterNumber("SIZE", "Tile size", defaultValue=512)) == "Tile size (default 512)"
    assert described("x", QgsProcessingParameterEnum("MODE", "Mode", options=["fast", "exact"], defaultValue=1)) == "Mode (default exact)"
    already = QgsProcessingParameterNumber("T", "Threshold (default: the checkpoint's)", defaultValue=0.5)
    assert described("x", already) == "Threshold (default: the checkpoint's)"
    assert described("x", QgsProcessingParameterVectorDestination("OUT", "Result")) == "Result"
    assert described("detect", QgsProcessingParameterNumber("THRESHOLD", "Threshold")).endswith("[probability 0-1]")


def test_metadata_has_what_plugins_qgis_org_shows():
    parser = configparser.ConfigParser()
    parser.read(REPO / "metadata.txt")
    general = parser["general"]
    for key in ("homepage", "tracker", "repository", "tags", "category", "changelog", "about", "email"):
        assert general.get(key, "").strip(), key
    assert general["repository"] == REPOSITORY_URL
    assert general["tracker"].startswith(REPOSITORY_URL)
    assert general["version"] in general["changelog"]
    assert "permafrost" in general["tags"]
