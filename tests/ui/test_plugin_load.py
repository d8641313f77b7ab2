"""The plugin loads, registers its provider and action, and unloads cleanly, twice."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import QAction


@pytest.fixture()
def menu_calls(qgis_iface, monkeypatch):
    """pytest-qgis's iface stub lacks removePluginMenu; record what the plugin asks of the menu."""
    calls = []
    monkeypatch.setattr(qgis_iface, "addPluginToMenu", lambda menu, action: calls.append(("add", menu, action)), raising=False)
    monkeypatch.setattr(qgis_iface, "removePluginMenu", lambda menu, action: calls.append(("remove", menu, action)), raising=False)
    monkeypatch.setattr(qgis_iface, "removeDockWidget", lambda dock: calls.append(("undock", dock)), raising=False)
    return calls


CLASS_FACTORY_PROBE = """
import sys
from qgis.core import QgsApplication
app = QgsApplication([], False)
app.initQgis()
import thaw_slump_mapper
plugin = thaw_slump_mapper.classFactory(None)
after_factory = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'segmentation_models_pytorch'))
plugin.initProcessing()
after_processing = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'segmentation_models_pytorch'))
ok = QgsApplication.processingRegistry().algorithmById('thawslump:detect') is not None
plugin.unload()
print('RESULT', len(after_factory), len(after_processing), ok)
"""


def test_class_factory_imports_no_torch_and_needs_no_iface(tmp_path):
    # qgis_process calls classFactory(None) and initProcessing(): neither may touch iface or
    # widgets, nor import torch (slow, and possibly not installed). A fresh interpreter is
    # needed because this test session has imported torch already.
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", CLASS_FACTORY_PROBE], capture_output=True, text=True, env=env, timeout=120)
    line = next((out_line for out_line in done.stdout.splitlines() if out_line.startswith("RESULT")), None)
    assert line is not None, done.stderr[-2000:]
    _, torch_after_factory, torch_after_processing, registered = line.split()
    assert torch_after_factory == "0", "classFactory imported torch"
    assert torch_after_processing == "0", "initProcessing (the provider or an algorithm module) imported torch"
    assert registered == "True"


@pytest.mark.parametrize("round_", [1, 2])
def test_load_and_unload_twice(qgis_app, qgis_iface, menu_calls, qtbot, round_):
    import thaw_slump_mapper

    registry = QgsApplication.processingRegistry()
    # Another test module may have registered the provider the way qgis_process does; take
    # it out so this test sees only what the plugin itself adds and removes.
    if registry.providerById("thawslump") is not None:
        registry.removeProvider("thawslump")
    for _ in range(2):
        plugin = thaw_slump_mapper.classFactory(qgis_iface)
        plugin.initGui()
        assert registry.providerById("thawslump") is not None
        assert plugin.action.text() == "Detect thaw slumps"
        assert plugin.action in plugin.toolbar.actions()
        assert ("add", "&Thaw Slump Mapper", plugin.action) in menu_calls
        dock = plugin.show_dock()
        assert not dock.isHidden() and plugin.action.isChecked()
        tracking = plugin.review_tracking
        assert tracking is not None
        action = plugin.action
        plugin.unload()
        assert plugin.review_tracking is None and tracking.trackers == {}
        assert ("remove", "&Thaw Slump Mapper", action) in menu_calls
        assert ("undock", dock) in menu_calls
        assert registry.providerById("thawslump") is None
        assert plugin.dock is None and plugin.action is None and plugin.toolbar is None
        menu_calls.clear()
    # Nothing of ours is left in the main window.
    leftovers = [a for a in qgis_iface.mainWindow().findChildren(QAction) if a.objectName() == "thawSlumpMapperDetectAction"]
    qtbot.wait(10)  # deleteLater runs in the event loop
    leftovers = [a for a in qgis_iface.mainWindow().findChildren(QAction) if a.objectName() == "thawSlumpMapperDetectAction"]
    assert leftovers == []
