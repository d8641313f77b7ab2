"""Thaw Slump Mapper QGIS plugin.

``classFactory`` is all QGIS needs. It imports no torch, creates no widgets and does not
touch ``iface``, so headless ``qgis_process`` can load the plugin for its Processing provider.
Importing this package imports nothing from QGIS, so the command line runs without QGIS.
"""


def classFactory(iface):  # noqa: N802 (QGIS's name)
    from .plugin import ThawSlumpMapperPlugin

    return ThawSlumpMapperPlugin(iface)
