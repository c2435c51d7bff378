"""Sample models: small ones trained here on real data (weights shipped), real pretrained ones
loaded from offline packages."""
from __future__ import annotations

from ..registry import LazyRegistry
from ..source import ModelSource

# name -> "module:function" returning a ModelSource (imported lazily: they need torch)
SAMPLES: dict[str, str] = {
    "digits_cnn": "edgeport.sample_models.digits_cnn:load",
    "text_transformer": "edgeport.sample_models.text_transformer:load",
    "efficientnet_lite0": "edgeport.sample_models.efficientnet_lite0:load",
    "minilm": "edgeport.sample_models.minilm:load",
}


_REGISTRY = LazyRegistry("sample model", SAMPLES)


def load_sample(name: str) -> ModelSource:
    """The sample model ``name`` as a ModelSource (imports torch and the model's packages)."""
    return _REGISTRY.load(name)()
