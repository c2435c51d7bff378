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


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``make test`` runs two workers, ``--dist loadgroup``), a test file's
    tests stay on one worker, so its module fixtures (conversions shared by its tests) are built
    once; the layer-zoo matrix is split by model instead, the cells of a model sharing its cache."""
    for item in items:
        group = item.nodeid.split("::")[0]
        if group.endswith("zoo/test_matrix.py") and hasattr(item, "callspec"):
            group = f"zoo:{item.callspec.params['model']}"
        item.add_marker(pytest.mark.xdist_group(group))
