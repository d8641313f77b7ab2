"""The dock's install offers: the light packages detection needs (shown only when some are
missing, instead of a traceback) and torch for fine-tuning and CUDA. pip runs as a
background task (InstallTask); ui.dependency_check does the work and holds the package lists."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from qgis.core import QgsApplication, QgsTask
from qgis.PyQt.QtCore import QObject, pyqtSignal
from qgis.PyQt.QtWidgets import QFrame, QLabel, QMessageBox, QPushButton, QVBoxLayout, QWidget

from . import dependency_check


class InstallTask(QgsTask):
    """pip in the background; output lines go to the dock's log."""

    line = pyqtSignal(str)

    def __init__(self, requirements: List[str], target: Path, on_done) -> None:
        super().__init__("Install Thaw Slump Mapper packages", QgsTask.CanCancel)
        self.requirements = requirements
        self.target = target
        self.on_done = on_done
        self.return_code: Optional[int] = None

    def run(self) -> bool:
        try:
            self.return_code = dependency_check.install_packages(
                self.requirements, self.target, on_output=self.line.emit, is_cancelled=self.isCanceled
            )
        except Exception as err:  # noqa: BLE001 - a task never raises
            self.line.emit(f"Cannot run pip: {err}")
            self.return_code = -1
        return self.return_code == 0

    def finished(self, ok: bool) -> None:
        self.on_done(self)


class InstallOffer(QObject):
    """Two frames (``dependency_frame`` above the form, ``full_frame`` below it) and their installs."""

    log = pyqtSignal(str)
    installed = pyqtSignal()  # an install ended (well or not); the packages on the path may have changed

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.parent_widget = parent
        self.task: Optional[InstallTask] = None
        self._build_dependency_frame()
        self._build_full_frame()

    def _build_dependency_frame(self) -> None:
        self.dependency_frame = QFrame()
        self.dependency_frame.setFrameShape(QFrame.StyledPanel)
        layout = QVBoxLayout(self.dependency_frame)
        self.dependency_label = QLabel()
        self.dependency_label.setWordWrap(True)
        self.install_button = QPushButton("Install missing packages")
        self.install_button.clicked.connect(lambda: self.install_missing(confirm=True))
        layout.addWidget(self.dependency_label)
        layout.addWidget(self.install_button)

    def _build_full_frame(self) -> None:
        """CPU detection needs no torch; fine-tuning and CUDA do, so the dock offers it here."""
        self.full_frame = QFrame()
        self.full_frame.setObjectName("thawSlumpFullInstall")
        layout = QVBoxLayout(self.full_frame)
        self.full_label = QLabel(dependency_check.FULL_NOTE)
        self.full_label.setWordWrap(True)
        self.full_install_button = QPushButton("Install torch for fine-tuning and CUDA...")
        self.full_install_button.setToolTip(
            f"pip-installs {', '.join(r for _, r in dependency_check.FULL_PACKAGES)} into the plugin's package folder")
        self.full_install_button.clicked.connect(lambda: self.install_full(confirm=True))
        layout.addWidget(self.full_label)
        layout.addWidget(self.full_install_button)
        self.full_frame.setVisible(bool(dependency_check.missing_full_packages()))

    def show_missing(self, missing: List[dependency_check.MissingPackage]) -> None:
        self.dependency_frame.setVisible(bool(missing))
        self.dependency_label.setText(
            dependency_check.describe_missing(missing)
            + f"\nThey go into {dependency_check.managed_site_dir()}, which the plugin puts on Python's path."
            if missing
            else ""
        )

    def install_missing(self, confirm: bool = True) -> None:
        missing = dependency_check.missing_packages()
        if not missing or self.task is not None:
            return
        requirements = [m.requirement for m in missing]
        target = dependency_check.managed_site_dir()
        if confirm and not self._agreed(
            "Install Python packages",
            f"Download and install {', '.join(requirements)} into\n{target}?\n(torch is large: several hundred MB.)",
        ):
            return
        self.install_button.setEnabled(False)
        self._start(requirements, target)

    def install_full(self, confirm: bool = True) -> bool:
        """Offer torch and segmentation-models-pytorch; True when they were missing."""
        missing = dependency_check.missing_full_packages()
        self.full_frame.setVisible(bool(missing))
        if not missing or self.task is not None:
            return bool(missing)
        requirements = [m.requirement for m in missing]
        target = dependency_check.managed_site_dir()
        self.log.emit(dependency_check.FULL_NOTE)
        if confirm and not self._agreed(
            "Install torch", f"{dependency_check.FULL_NOTE}\n\nDownload and install {', '.join(requirements)} into\n{target}?"
        ):
            return True
        self._start(requirements, target)
        return True

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def _agreed(self, title: str, question: str) -> bool:
        return QMessageBox.question(self.parent_widget, title, question) == QMessageBox.Yes

    def _start(self, requirements: List[str], target: Path) -> None:
        self.log.emit(f"Installing {' '.join(requirements)} into {target} ...")
        self.task = InstallTask(requirements, target, self._done)
        self.task.line.connect(self.log)
        QgsApplication.taskManager().addTask(self.task)

    def _done(self, task: InstallTask) -> None:
        self.task = None
        self.install_button.setEnabled(True)
        dependency_check.activate_managed_site_dir()
        self.full_frame.setVisible(bool(dependency_check.missing_full_packages()))
        if task.return_code == 0:
            self.log.emit("Packages installed.")
        else:
            self.log.emit(f"pip failed (exit status {task.return_code}); see the lines above.")
        self.installed.emit()
