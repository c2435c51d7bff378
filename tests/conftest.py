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


def work_unit(nodeid: str) -> str:
    """The tests a pytest-xdist worker takes together: a test file, so its module fixtures (the
    conversions its tests share) are built once; the layer-zoo matrix by model instead, the cells
    of a model sharing its cache (a cell's id starts with the model's name, which has no dash)."""
    path, _, rest = nodeid.partition("::")
    if path.endswith("zoo/test_matrix.py") and "[" in rest:
        return "zoo:" + rest.split("[", 1)[1].split("-", 1)[0]
    return path


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup`` schedules by ``work_unit``. xdist's own loadgroup reads groups from node
    ids it rewrites, which pytest 9's node ids no longer allow, so every test went alone and a
    file's shared conversions were built on both workers."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ByWorkUnit(config, log)
