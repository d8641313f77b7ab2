"""The dock without torch: CPU detection stays available, and fine-tuning and CUDA say that they
need torch and offer to install it (the light install's other half)."""
from __future__ import annotations

from qgis.PyQt.QtWidgets import QMessageBox

from thaw_slump_mapper.ui import dependency_check
from thaw_slump_mapper.ui.dock import DetectDock

FAKE_TORCH = (("no_such_torch_tsm", "no-such-torch-tsm"),)


def test_without_torch_fine_tune_offers_the_install(qgis_app, qgis_iface, qgis_new_project, monkeypatch, tmp_path):
    monkeypatch.setattr(dependency_check, "FULL_PACKAGES", FAKE_TORCH)
    monkeypatch.setenv("THAW_SLUMP_MAPPER_DEPS", str(tmp_path / "deps"))
    asked = []
    # The user declines the install; the real modal question would block an unattended test.
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: asked.append(args[2]) or QMessageBox.No)
    widget = DetectDock(qgis_iface)
    try:
        assert not widget.install_offer.full_frame.isHidden()
        assert "torch" in widget.install_offer.full_label.text() and "CPU detection does not" in widget.install_offer.full_label.text()
        assert widget.install_offer.dependency_frame.isHidden(), "the light set is installed: detection needs nothing more"
        assert widget.open_fine_tune() is None
        assert asked and "no-such-torch-tsm" in asked[0]
        assert widget.install_offer.task is None
        widget.device_combo.setCurrentText("cuda")
        assert "CUDA needs torch" in widget.device_label.text()
    finally:
        widget.close()
        widget.deleteLater()


def test_with_torch_the_offer_is_hidden(qgis_app, qgis_iface, qgis_new_project):
    widget = DetectDock(qgis_iface)
    try:
        assert dependency_check.missing_full_packages() == []
        assert widget.install_offer.full_frame.isHidden()
    finally:
        widget.close()
        widget.deleteLater()


def test_every_pip_run_carries_the_numpy_pin():
    command = dependency_check.pip_install_command(["torch"], dependency_check.managed_site_dir(), python="/usr/bin/python3")
    assert "numpy>=1.26,<2" in command and "affine>=2.4,<3" in command
    assert dependency_check.with_pins(["numpy>=1.26,<2"]).count("numpy>=1.26,<2") == 1


def test_dock_tooltips_give_units_and_defaults(qgis_app, qgis_iface, qgis_new_project):
    widget = DetectDock(qgis_iface)
    try:
        for name in ("raster_combo", "dem_combo", "checkpoint_widget", "extent_combo", "threshold_spin",
                     "min_area_spin", "device_combo", "output_widget"):
            tip = getattr(widget, name).toolTip()
            assert tip, name
            if name != "raster_combo":
                assert "Default" in tip or "default" in tip, name
        assert "m\u00b2" in widget.min_area_spin.toolTip() and "0-1" in widget.threshold_spin.toolTip()
    finally:
        widget.close()
        widget.deleteLater()
