"""The loading of model specs into a :class:`~edgeport.source.ModelSource`.

Specs: ``sample:NAME``, ``path/file.py:factory``, ``package.module:factory``, ``model.onnx``,
``model.pt2``, and TensorFlow ones (:mod:`.tf_source`): ``model.keras``, ``model.h5``, a SavedModel
folder. A factory returns ``(module, example_inputs)``, a :class:`ModelSource`, or a
``tf.keras.Model`` / ``tf.function`` with an input signature.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import ModelLoadError, one_line
from .io_names import check_names
from .source import SAMPLES, ModelSource


def load_source(spec: str) -> ModelSource:
    """Turn a model spec into a :class:`ModelSource`; any failure is a one-line ModelLoadError."""
    if spec.startswith("sample:"):
        return SAMPLES.load(spec[len("sample:"):])()
    lower = spec.lower()
    if lower.endswith(".onnx"):
        return _load_onnx(Path(spec))
    if lower.endswith(".pt2"):
        return _load_pt2(Path(spec))
    from .tf_source import is_tf_spec

    if is_tf_spec(spec):
        return _load_tensorflow(Path(spec))
    if ":" in spec:
        target, _, factory_name = spec.rpartition(":")
        return _from_factory(spec, _import_factory(target, factory_name))
    raise ModelLoadError(f"cannot tell what model {spec!r} is; use sample:NAME, file.py:factory, "
                         "package.module:factory, model.onnx, model.pt2, model.keras, model.h5 or a "
                         "SavedModel folder")


def _import_factory(target: str, factory_name: str) -> Callable[[], Any]:
    if target.endswith(".py"):
        path = Path(target)
        if not path.is_file():
            raise ModelLoadError(f"model file not found: {path}")
        mod_name = f"_edgeport_user_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
        spec = importlib.util.spec_from_file_location(mod_name, path)
        if spec is None or spec.loader is None:
            raise ModelLoadError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except SystemExit as exc:
            raise ModelLoadError(f"importing {path} called sys.exit({exc.code!r}): nothing was exported") from None
        except Exception as exc:
            raise ModelLoadError(f"importing {path} failed: {type(exc).__name__}: {one_line(exc)}") from exc
    else:
        try:
            module = importlib.import_module(target)
        except Exception as exc:
            raise ModelLoadError(f"cannot import module {target!r}: {exc}") from exc
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise ModelLoadError(f"{target} has no factory named {factory_name!r}")
    return factory


def _from_factory(spec: str, factory: Callable[[], Any]) -> ModelSource:
    try:
        made = factory()
    except SystemExit as exc:
        raise ModelLoadError(f"factory {spec} called sys.exit({exc.code!r}): nothing was exported") from None
    except Exception as exc:
        raise ModelLoadError(f"factory {spec} raised {type(exc).__name__}: {one_line(exc)}") from exc
    if isinstance(made, ModelSource):
        return made
    from .tf_source import is_tf_object

    if is_tf_object(made):
        return _tensorflow_source(spec.rpartition(":")[2], _tf_object(spec, made))
    if not (isinstance(made, tuple) and len(made) == 2):
        raise ModelLoadError(f"factory {spec} must return (module, example_inputs) or a ModelSource")
    module, example = made
    if not isinstance(example, (tuple, list)):
        example = (example,)
    if hasattr(module, "eval"):
        module.eval()
    name = spec.rpartition(":")[2]
    try:
        return ModelSource(name=name, module=module, example_inputs=tuple(example))
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"running {spec} on its example inputs failed: {exc}") from exc


def _load_onnx(path: Path) -> ModelSource:
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    try:
        import onnx

        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ModelLoadError(f"{path.name} is not a readable ONNX model: {one_line(exc)}") from exc
    from onnx import helper

    inits = {i.name for i in model.graph.initializer}
    examples, names = [], []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        t = vi.type.tensor_type
        dims = [d.dim_value if d.dim_value > 0 else 1 for d in t.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(t.elem_type)
        examples.append(np.zeros(dims, dtype=dtype))
        names.append(vi.name)
    outputs = tuple(o.name for o in model.graph.output)
    return ModelSource(name=path.stem, module=None, example_inputs=tuple(examples),
                       input_names=tuple(names), output_names=outputs, onnx_path=path.resolve())


def _tf_object(spec: str, made: Any) -> Any:
    from .tf_source import from_tf_object

    try:
        return from_tf_object(made)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"running {spec} on zeros of its input shapes failed: {one_line(exc)}") from exc


def _load_tensorflow(path: Path) -> ModelSource:
    from .tf_source import load_tf_file

    name = path.name.rstrip("/") if path.is_dir() else path.stem
    return _tensorflow_source(name or "saved_model", load_tf_file(path))


def _tensorflow_source(name: str, tfm: Any) -> ModelSource:
    examples = tuple(np.zeros(shape, dtype=dtype) for _, shape, dtype in tfm.inputs)
    source = ModelSource(name=name, module=None, example_inputs=examples,
                         input_names=tuple(n for n, _, _ in tfm.inputs), output_names=tfm.outputs, tensorflow=tfm)
    check_names(name, source.input_names, source.output_names, True)
    return source


def _load_pt2(path: Path) -> ModelSource:
    """A ``torch.export`` archive, loaded as data only (see :mod:`edgeport.pt2`)."""
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path}")
    from .pt2 import load_pt2

    module, args, names = load_pt2(path)
    return ModelSource(name=path.stem, module=module, example_inputs=args, input_names=names)
