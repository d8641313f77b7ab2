"""QGIS Processing front end: the provider `thawslump` and one module per algorithm."""
