"""edgeport: compress and convert a trained PyTorch model for an edge target, then prove the
artifact in the target's own runtime and ship it as a verifiable bundle."""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import EdgeportError  # noqa: E402  (light: no heavy imports below)


def export(*args, **kwargs):  # type: ignore[no-untyped-def]
    """Export a model for one or more targets; see :func:`edgeport.pipeline.export`."""
    from .pipeline import export as _export

    return _export(*args, **kwargs)


def validate(bundle, progress=None):  # type: ignore[no-untyped-def]
    """Re-check a bundle; see :func:`edgeport.pipeline.validate_bundle`."""
    from .pipeline import validate_bundle

    return validate_bundle(bundle, progress)


def run(artifact, data, out=None, runtime=None, threads=1):  # type: ignore[no-untyped-def]
    """Run any artifact on an npz of inputs; see :func:`edgeport.pipeline.run_artifact`."""
    from .pipeline import run_artifact

    return run_artifact(artifact, data, out, runtime, threads)


def load_profile(name_or_path):  # type: ignore[no-untyped-def]
    """A target profile by name or TOML path."""
    from .targets.profile import load_profile as _load

    return _load(name_or_path)


__all__ = ["EdgeportError", "__version__", "export", "load_profile", "run", "validate"]
