"""A fifth format made entirely outside the library, through the public registration API.

The "null" format stores a linear model's weights as an .npz file; its runtime is numpy. It needs
no converter, so the suite can drive the whole pipeline — export, validate, tamper, exit codes —
in well under a second, and it proves that a format is one record plus its own modules.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgeport.data import TensorSpec
from edgeport.errors import RuntimeLoadError
from edgeport.exporters.base import Exporter, ExportJob
from edgeport.formats import Artifact, Format, FormatOptions, Layout, formats, register_format
from edgeport.precision import Precision
from edgeport.validation.runtimes.base import Runtime, Session

ENTRY = "model.null"


class NullExporter(Exporter):
    def export(self, job: ExportJob, out_dir: Path) -> Artifact:
        lin = job.module.lin
        out_dir.mkdir(parents=True, exist_ok=True)
        with open(out_dir / ENTRY, "wb") as f:
            np.savez(f, weight=lin.weight.detach().numpy(), bias=lin.bias.detach().numpy())
        return Artifact("null", out_dir, ENTRY, job.precision, tuple(job.source.input_names),
                        tuple(job.source.output_names), {"weights": "fp32", "compute": "fp32 (numpy)"})


class NullSession(Session):
    runtime_name = "null-numpy"

    def __init__(self, path: Path):
        try:
            with np.load(path, allow_pickle=False) as z:
                self.w, self.b = z["weight"], z["bias"]
        except Exception as exc:
            raise RuntimeLoadError(f"null-numpy cannot load {path.name}: {exc}") from exc
        self.input_specs = (TensorSpec("x", (1, self.w.shape[1]), "float32"),)
        self.output_names = ("y",)

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"y": feed["x"] @ self.w.T + self.b}


class NullRuntime(Runtime):
    name = "null-numpy"

    def load(self, path: Path, *, threads: int = 1, **options: Any) -> Session:
        return NullSession(Path(path))


def register() -> Format:
    for fmt in formats():
        if fmt.name == "null":
            return fmt
    return register_format(Format(
        name="null", entry=ENTRY, suffixes=(".null",), layout=Layout.FILE,
        exporter="null_format:NullExporter", runtimes=(("null-numpy", "null_format:NullRuntime"),),
        precisions=(Precision.FP32,), options=FormatOptions))


def factory():
    import torch

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.lin = torch.nn.Linear(6, 3)

        def forward(self, x):
            return self.lin(x)

    from edgeport.source import ModelSource

    return ModelSource(name="tiny", module=Tiny().eval(), example_inputs=(np.zeros((1, 6), np.float32),),
                       input_names=("x",), output_names=("y",))


PROFILE = '''name = "null-target"
format = "null"
runtime = "null-numpy"
precisions = ["fp32"]
default_precision = "fp32"

[latency]
threads = 1
warmup = 1
runs = 5
'''
