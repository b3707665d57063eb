"""Shared fixtures: every test that takes ``spec`` runs on a spread of architectures."""

from __future__ import annotations

import pytest

from nngraph.graph import ArchSpec
from tests.helpers import SPECS, spec_id


@pytest.fixture(params=SPECS, ids=spec_id)
def spec(request: pytest.FixtureRequest) -> ArchSpec:
    return request.param
