"""Where the trained samples keep their shipped files, and how they are read back."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelLoadError

HERE = Path(__file__).resolve().parent
WEIGHTS_DIR = HERE / "weights"
DATA_DIR = HERE / "data"


def weights_path(name: str) -> Path:
    """Path of the shipped state dict of sample ``name``."""
    return WEIGHTS_DIR / f"{name}.pt"


def data_path(stem: str) -> Path:
    """Path of a shipped npz (eval split + calibration subset)."""
    return DATA_DIR / f"{stem}.npz"


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of a shipped npz; a missing file says how to rebuild it."""
    if not path.is_file():
        raise ModelLoadError(f"sample data {path.name} is missing; rebuild it with "
                             "python -m edgeport.sample_models.train")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_state(module: Any, name: str) -> Any:
    """Load the shipped weights of ``name`` into ``module`` and put it in eval mode."""
    import torch

    path = weights_path(name)
    if not path.is_file():
        raise ModelLoadError(f"sample weights {path.name} are missing; rebuild them with "
                             "python -m edgeport.sample_models.train")
    state = torch.load(path, map_location="cpu", weights_only=True)
    module.load_state_dict(state, strict=True)
    return module.eval()
