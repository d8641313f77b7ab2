"""Write docs/PROCESSING.md from the registered `thawslump:` algorithms and shipped models.

Each algorithm gets a section whose heading is its name, so the helpUrl anchors
(processing_provider/parameter_help.docs_url) land on it; the text is the algorithm's own
help and parameter descriptions, so the page says what the dialogs say.
Run: .venv/bin/python tools/make_processing_docs.py   (or `make processing-docs`)
"""
from __future__ import annotations

import html
import re
import sys
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs" / "PROCESSING.md"
INTRO = """# Processing algorithms

Every algorithm of the Thaw Slump Mapper runs from the Processing toolbox (provider
"Thaw Slump Mapper"), in graphical models, in batch mode, from the Python console with
`processing.run("thawslump:<name>", {...})` and headless with
`qgis_process run thawslump:<name> -- PARAM=value ...`. The Help button of each dialog opens
the section of this page with the algorithm's name. This page is written by
`make processing-docs` from the algorithms themselves.

The plugin also ships a Processing model, `thawslump:detect_describe_report` (file
`processing_provider/models/detect_describe_report.model3`): detect, then morphometry with a
DEM, then the HTML report. Open it in the Graphical Modeler to change it, or run it:

```
qgis_process run thawslump:detect_describe_report -- IMAGE=scene.tif DEM=dem.tif \
    detect:SLUMPS=slumps.gpkg morphometry:MORPHOMETRY=described.gpkg report:REPORT=report.html
```
"""


def algorithm_section(algorithm) -> List[str]:
    lines = [f"## {algorithm.name()}", "", f"**{algorithm.displayName()}** (`{algorithm.id()}`)", ""]
    lines += [_plain(_help_text(algorithm)), "", "| Parameter | Description | Type |", "| --- | --- | --- |"]
    for definition in algorithm.parameterDefinitions():
        optional = " (optional)" if definition.flags() & definition.FlagOptional else ""
        lines.append(f"| `{definition.name()}` | {_cell(definition.description())}{optional} | {definition.type()} |")
    outputs = algorithm.outputDefinitions()
    if outputs:
        lines += ["", "Outputs: " + ", ".join(f"`{o.name()}` ({_cell(o.description())})" for o in outputs) + "."]
    return lines + [""]


def _help_text(algorithm) -> str:
    if hasattr(algorithm, "helpContent"):  # a model: its description, not its whole help page
        return algorithm.helpContent().get("ALG_DESC", "")
    text = algorithm.shortHelpString() or ""
    return text.split("\n\nDocumentation:")[0]


def _plain(text: str) -> str:
    """HTML help (the models') as plain Markdown paragraphs."""
    text = re.sub(r"<h[23]>(.*?)</h[23]>", r"\n**\1**\n", text)
    text = re.sub(r"</p>|<br\s*/?>", "\n", text)
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def main(path: Path = DOCS) -> Path:
    sys.path.insert(0, str(REPO.parent))
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    from thaw_slump_mapper.processing_provider.provider import PROVIDER_ID, ThawSlumpProvider

    registry = QgsApplication.processingRegistry()
    if registry.providerById(PROVIDER_ID) is None:
        registry.addProvider(ThawSlumpProvider())
    provider = registry.providerById(PROVIDER_ID)
    lines = [INTRO]
    for algorithm in provider.algorithms():
        lines += algorithm_section(algorithm)
    path.write_text("\n".join(lines))
    return path


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS))
