"""Shared fixtures: every test that takes ``spec`` runs on a spread of architectures."""

from __future__ import annotations

import pytest

from nngraph.graph import ArchSpec
from tests.helpers import SPECS, spec_id


@pytest.fixture(params=SPECS, ids=spec_id)
def spec(request: pytest.FixtureRequest) -> ArchSpec:
    return request.param


@pytest.fixture(scope="session")
def digits8_path(tmp_path_factory: pytest.TempPathFactory):
    """All 1,797 digits as small INRs (2-8-8-1 SIRENs fitted to 30 dB: about 3 s), fitted once
    for the session: the store the training and bad-input tests train on."""
    from nngraph.data import build_store, load_source

    path = tmp_path_factory.mktemp("data") / "digits8.pt"
    spec = ArchSpec.siren(hidden_dim=8)
    build_store(load_source("digits"), spec, path, steps=150, target_psnr=30.0, progress=False)
    return path
