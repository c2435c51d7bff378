"""Sample models: small ones trained here on real data (weights shipped), real pretrained ones
loaded from offline packages."""
from __future__ import annotations

import importlib

from ..errors import UnknownNameError
from ..source import ModelSource

# name -> "module:function" returning a ModelSource (imported lazily: they need torch)
SAMPLES: dict[str, str] = {
    "digits_cnn": "edgeport.sample_models.digits_cnn:load",
    "text_transformer": "edgeport.sample_models.text_transformer:load",
    "efficientnet_lite0": "edgeport.sample_models.efficientnet_lite0:load",
    "minilm": "edgeport.sample_models.minilm:load",
}


def load_sample(name: str) -> ModelSource:
    if name not in SAMPLES:
        raise UnknownNameError("sample model", name, list(SAMPLES))
    mod_name, _, fn = SAMPLES[name].partition(":")
    return getattr(importlib.import_module(mod_name), fn)()
