"""Shared fixtures: sample models loaded once per session (the real ones take seconds each)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def digits():
    from edgeport.sample_models import load_sample

    return load_sample("digits_cnn")


@pytest.fixture(scope="session")
def text_transformer():
    from edgeport.sample_models import load_sample

    return load_sample("text_transformer")


@pytest.fixture(scope="session")
def effnet():
    from edgeport.sample_models import load_sample

    return load_sample("efficientnet_lite0")


@pytest.fixture(scope="session")
def minilm():
    from edgeport.sample_models import load_sample

    return load_sample("minilm")
