"""Detection engine: checkpoint -> streaming tiled inference -> slump polygons. No QGIS, no Qt."""
