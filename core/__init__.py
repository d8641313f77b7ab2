"""The bottom package: errors, progress, scaling, the checkpoint and chip formats, devices.

Everything else in the plugin may import it; it imports no other package of the plugin
(and never qgis or Qt), so engine, analysis and model share these contracts without loops.
"""
