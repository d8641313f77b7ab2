"""QGIS adapters shared by the front ends ui/ and processing_provider/ (which never import each other)."""
