"""Sample models: small ones trained here on real data (weights shipped), real pretrained ones
loaded from offline packages. Their names are listed in ``edgeport.source.SAMPLES``."""
from __future__ import annotations

from ..source import SAMPLES, ModelSource


def load_sample(name: str) -> ModelSource:
    """The sample model ``name`` as a ModelSource (imports torch and the model's packages)."""
    return SAMPLES.load(name)()
