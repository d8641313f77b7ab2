"""Fixtures shared by the training tests."""
from __future__ import annotations

import pytest

from thaw_slump_mapper.core.checkpoint import bundled_checkpoint_path, load_checkpoint
from thaw_slump_mapper.model.training_start import load_training_chips


@pytest.fixture(scope="session")
def arctic_chips(shared_data, tmp_path_factory):
    """The 16 real Arctic chips in the training-chip format, loaded for the bundled network."""
    from thaw_slump_mapper.model.arctic_chips_builder import build_arctic_chips

    folder = tmp_path_factory.mktemp("arctic") / "chips"
    build_arctic_chips(shared_data / "arctic_rts_chips", folder)
    return load_training_chips([folder], load_checkpoint(bundled_checkpoint_path()))
