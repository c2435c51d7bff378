"""ModelSource: what the user hands in — a model, its example inputs and its data. Specs
(``sample:NAME``, ``file.py:factory``, ``model.onnx``, ...) become one in :mod:`.source_specs`."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .data import Dataset, TensorSpec
from .errors import ConfigError, ModelLoadError
from .io_names import check_names, default_input_names, flatten_outputs, forward_input_names
from .registry import LazyRegistry

TASKS = ("classification", "segmentation", "regression", "embedding", "generic")
#: what a user may declare (``--task``, ``ModelSource(task=...)``); "generic" is "not declared"
DECLARED_TASKS = TASKS[:4]

#: sample model name -> "module:function" returning a ModelSource (imported on use: they need torch)
SAMPLES = LazyRegistry("sample model", {
    "digits_cnn": "edgeport.sample_models.digits_cnn:load",
    "text_transformer": "edgeport.sample_models.text_transformer:load",
    "efficientnet_lite0": "edgeport.sample_models.efficientnet_lite:load_lite0",
    "efficientnet_lite1": "edgeport.sample_models.efficientnet_lite:load_lite1",
    "minilm": "edgeport.sample_models.minilm:load",
})


@dataclass
class ModelSource:
    """A model to export: a torch module (or an ONNX file) plus example inputs and optional data.

    ``example_inputs`` are numpy arrays with a leading batch axis of 1 — the shape exported.
    ``eval_data`` (labelled or not) is used for parity, the task metric and golden inputs;
    ``calibration_data`` for static quantization (defaults to ``eval_data``); ``train_data``
    (a Dataset, or a function making one on first use) is what compression's recovery may train
    on — never the eval data.
    """

    name: str
    module: Any | None
    example_inputs: tuple[np.ndarray, ...]
    input_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ()
    task: str = "generic"
    eval_data: Dataset | None = None
    calibration_data: Dataset | None = None
    onnx_path: Path | None = None
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    train_data: "Dataset | Callable[[], Dataset] | None" = None
    #: why ``task`` is what it is: declared, or what it was assumed from (the report says so)
    task_basis: str = ""
    #: a TensorFlow source (:class:`~edgeport.tf_source.TFModel`); ``module`` is then None
    tensorflow: Any = None

    def __post_init__(self) -> None:
        self.example_inputs = tuple(_to_numpy(x) for x in self.example_inputs)
        derived = not self.input_names or (self.module is not None and not self.output_names)
        if not self.input_names:
            count = len(self.example_inputs)
            named = forward_input_names(self.module, count) if self.module is not None else None
            self.input_names = named or default_input_names(count)
        if len(self.input_names) != len(self.example_inputs):
            raise ModelLoadError(f"{self.name}: {len(self.input_names)} input names for "
                                 f"{len(self.example_inputs)} example inputs")
        if self.task not in TASKS:
            raise ModelLoadError(f"{self.name}: unknown task {self.task!r}; known: {', '.join(TASKS)}")
        if self.module is not None:
            if not self.output_names:  # given names are checked against forward's outputs when it runs
                self.output_names = tuple(name for name, _ in self._forward_leaves(self.example_inputs))
            check_names(self.name, self.input_names, self.output_names, derived)

    # -- shapes -------------------------------------------------------------------------------
    @property
    def input_specs(self) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec(n, tuple(x.shape), x.dtype.name)
                     for n, x in zip(self.input_names, self.example_inputs))

    def example_feed(self) -> dict[str, np.ndarray]:
        return dict(zip(self.input_names, self.example_inputs))

    # -- reference outputs --------------------------------------------------------------------
    @property
    def classifier_output(self) -> str | None:
        """The output top-1 agreement and accuracy are judged on (a classifier's logits)."""
        return self.output_names[0] if self.task == "classification" and self.output_names else None

    def reference(self, data: Dataset, module: Any | None = None) -> dict[str, np.ndarray]:
        """Outputs of the torch model (or of ``module``, e.g. a pruned copy) on every sample.
        An ONNX source has no torch model: its reference comes from the validation runtime
        (``source_data.reference_outputs``)."""
        if module is None and self.module is None:
            raise ModelLoadError(f"{self.name}: no torch module to compute reference outputs with")
        batch = int(self.extra.get("reference_batch", 64))
        try:
            return self._reference_batched(data, module, batch)
        except Exception:
            if batch == 1:
                raise
            # a model traced/exported at batch 1 (e.g. a .pt2 with a static batch) runs one by one
            self.extra["reference_batch"] = 1
            return self._reference_batched(data, module, 1)

    def _reference_batched(self, data: Dataset, module: Any | None, batch: int) -> dict[str, np.ndarray]:
        outs: dict[str, list[np.ndarray]] = {n: [] for n in self.output_names}
        for start in range(0, len(data), batch):
            feeds = tuple(data.inputs[n][start:start + batch] for n in self.input_names)
            for name, o in self._torch_forward(feeds, module).items():
                outs[name].append(o)
        return {n: np.concatenate(o) for n, o in outs.items()}

    def _torch_forward(self, arrays: tuple[np.ndarray, ...], module: Any | None = None) -> dict[str, np.ndarray]:
        """The model's outputs on one batch, keyed by :attr:`output_names` in forward's order."""
        leaves = self._forward_leaves(arrays, module)
        if len(leaves) != len(self.output_names):
            raise ModelLoadError(f"{self.name}: forward() returned {len(leaves)} tensors, the source names "
                                 f"{len(self.output_names)} outputs")
        return {name: arr for name, (_, arr) in zip(self.output_names, leaves)}

    def _forward_leaves(self, arrays: tuple[np.ndarray, ...], module: Any | None = None) -> list[tuple[str, np.ndarray]]:
        """``(name from forward's return structure, array)`` per output tensor (see :mod:`.io_names`)."""
        import torch

        mod = module if module is not None else self.module
        with torch.no_grad():
            out = mod(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays))
        return [(name, o.detach().float().numpy() if o.is_floating_point() else o.detach().numpy())
                for name, o in flatten_outputs(out, f"{self.name}: forward()")]

    # -- identity -----------------------------------------------------------------------------
    @property
    def framework(self) -> str:
        """What computes the reference outputs: ``torch``, ``tensorflow`` or ``onnx`` (onnxruntime)."""
        if self.tensorflow is not None:
            return "tensorflow"
        return "onnx" if self.module is None and self.onnx_path is not None else "torch"

    def framework_info(self) -> dict[str, str]:
        """The manifest's record of the source framework and its version(s)."""
        if self.tensorflow is not None:
            versions = dict(self.tensorflow.versions)
            return {"framework": "tensorflow", "framework_version": versions.get("tensorflow", "unknown"),
                    **{f"{k}_version": v for k, v in versions.items() if k != "tensorflow"}}
        from importlib.metadata import PackageNotFoundError, version

        package = "onnxruntime" if self.framework == "onnx" else "torch"
        try:
            found = version(package)
        except PackageNotFoundError:
            found = "unknown"
        return {"framework": self.framework, "framework_version": found,
                **({"reference_runtime": f"onnxruntime {found}"} if package == "onnxruntime" else {})}

    def digest(self) -> str:
        """sha256 of the source weights (torch state dict or model file)."""
        if self.tensorflow is not None:
            return self.tensorflow.digest
        h = hashlib.sha256()
        if self.onnx_path is not None and self.module is None:
            h.update(Path(self.onnx_path).read_bytes())
        elif self.module is not None and hasattr(self.module, "state_dict"):
            for k, v in sorted(self.module.state_dict().items()):
                h.update(k.encode())
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return "sha256:" + h.hexdigest()

    def training_data(self) -> Dataset | None:
        """The train split recovery learns from (made on first use when it is a function)."""
        if callable(self.train_data):
            self.train_data = self.train_data()
        return self.train_data

    def with_task(self, task: str, basis: str = "declared (--task)") -> "ModelSource":
        """A copy that says what the model does (one of :data:`DECLARED_TASKS`)."""
        if task not in DECLARED_TASKS:
            raise ConfigError(f"unknown task {task!r}; known: {', '.join(DECLARED_TASKS)}")
        return replace(self, task=task, task_basis=basis)

    def with_data(self, data: Dataset | None) -> "ModelSource":
        """A copy whose eval (and calibration) data are the user's ``--data``."""
        if data is None:
            return self
        # one class id per sample for the first output: a model whose task was not declared is
        # judged as a classifier (labels naming no output are refused here, before any work)
        first = data.labels_for(self.output_names).get(self.output_names[0]) if self.output_names else None
        ids = first is not None and first.dtype.kind in "biu" and first.size == len(first)
        if ids and self.task == "generic":
            return replace(self, eval_data=data, calibration_data=data, task="classification",
                           task_basis=f"assumed: the labels of output {self.output_names[0]!r} are one class id "
                                      "per sample (declare --task to change)")
        return replace(self, eval_data=data, calibration_data=data)


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)


# ------------------------------------------------------------------------------------------------
