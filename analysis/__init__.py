"""Analysis of mapped thaw slumps: morphometry (shape, terrain, solar radiation), evaluation,
label export, review states and the HTML report. No QGIS, no Qt."""
