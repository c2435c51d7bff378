"""PyTorch -> TF.js graph model (``tfjs/model.json`` + weight shards).

Path: torch -> ONNX (dynamo) -> SavedModel (onnx2tf, NCHW inputs kept) -> tensorflowjs'
``convert_tf_saved_model`` in-process. Precision is TF.js *weight* quantization: fp16 stores
float16, int8 stores uint8 with one affine (min, scale) per tensor. TF.js turns every weight back
into float32 when the model loads, so these shrink the download only; the facts say so.

Integer token ids: the graph declares int64 (from torch), TF.js runs int32 tensors; edgeport's
runtimes feed int32 and the facts tell users to do the same.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import ConversionError, MissingDependencyError, RuntimeLoadError
from ..formats import Artifact, get_format
from ..io_names import name_problem
from ..precision import Precision
from ..validation.runtimes.tfjs_graph_io import METADATA_KEY
from .base import Exporter, ExportJob

ENTRY = get_format("tfjs").entry
#: model.json's userDefinedMetadata key holding the source names (read by the tfjs runtimes)


class TFJSExporter(Exporter):
    def export(self, job: ExportJob, out_dir: Path) -> Artifact:
        """Write ``out_dir/tfjs/model.json`` and its shards; describe them in an Artifact."""
        from . import _tfjs_convert as conv
        from ._onnx2tf_env import onnx_to_saved_model
        from .onnx_tfjs_lower import lower_einsum, split_grouped_conv
        from .torch_to_onnx import source_onnx_for_tensorflow

        precision = job.precision
        src = job.source
        workdir = Path(job.workdir)
        if src.tensorflow is not None:  # tensorflowjs on the source's own (frozen) SavedModel
            from ._tf_saved_model import canonical_saved_model

            saved_model, prepared = canonical_saved_model(job), []
        else:
            onnx_path, prepared = source_onnx_for_tensorflow(job, builtin_gelu=False,
                                                             extra_rewrites=(split_grouped_conv, lower_einsum))
            saved_model = onnx_to_saved_model(onnx_path, workdir / "tfjs_saved_model", keep_nchw=True,
                                              progress=job.progress, cache_dir=job.shared_dir)
        tfjs_dir = Path(out_dir) / Path(ENTRY).parent
        with job.progress.step(f"SavedModel→TF.js ({precision})"):
            # a float32 pass first: its manifest names the weights and their sizes (which the
            # int8 map needs: it keeps small tensors in float16), and its bytes are the fp32
            # denominator of the size ratio, so no second fp32 export is needed for it
            probe = conv.convert_saved_model(saved_model, workdir / "tfjs_fp32")
            sizes = conv.weight_sizes(probe)
            _add_metadata(probe, src, "fp32")
            fp32_bytes = sum(f.stat().st_size for f in probe.parent.iterdir() if f.is_file())
            qmap = conv.quantization_map(precision.value, sizes)
            policy: dict[str, Any] | None = None
            if qmap is None:
                _move_dir(probe.parent, tfjs_dir)
            elif precision is Precision.INT8 and job.options.tensor_policy == "measured":
                chosen, policy = _measured_uint8(probe, job)
                _move_dir(chosen.parent, tfjs_dir)
            else:  # the probe's weights re-stored by tensorflowjs' writer: no second conversion
                conv.requantize(probe, tfjs_dir, qmap, precision.value)
        doc = json.loads((Path(out_dir) / ENTRY).read_text())
        src_dtypes = {s.name: s.dtype for s in src.input_specs}
        facts = _facts(doc, precision, src_dtypes, conv.tensorflowjs_version())
        if policy is not None:
            facts["tensor_policy"] = policy
            if policy.get("kept_float16"):
                facts["weights"] = (f"uint8 with a per-tensor affine (min, scale), float16 for tensors under "
                                    f"{_uint8_min()} elements and for the {len(policy['kept_float16'])} measured "
                                    "most harmed by one range per tensor (TF.js weight quantization)")
        if prepared:
            facts["recurrent"] = prepared
        if src.tensorflow is not None:
            facts["layout"] = "the TensorFlow source's own input layout"
            facts["converter"] = (f"TensorFlow source -> frozen SavedModel -> tensorflowjs {conv.tensorflowjs_version()} "
                                  "convert_tf_saved_model")
        return Artifact(format="tfjs", root=Path(out_dir), entry=ENTRY, precision=precision,
                        input_names=tuple(src.input_names), output_names=tuple(src.output_names),
                        facts=facts, fp32_bytes=fp32_bytes)


def _measured_uint8(probe: Path, job: ExportJob) -> tuple[Path, dict[str, Any]]:
    """int8's uint8 / float16 split chosen by :mod:`._tfjs_policy`, measured in TF.js on the
    calibration inputs; without calibration data or a TF.js runtime, the size rule, saying why."""
    from . import _tfjs_convert as conv
    from ._tfjs_policy import PolicyInputs, choose

    qmap = conv.quantization_map("int8", conv.weight_sizes(probe))
    fallback = Path(job.workdir) / "tfjs_int8_rule"
    data = job.calibration
    if data is None:
        return conv.requantize(probe, fallback, qmap, "int8"), {
            "met": None, "not_measured": "no calibration data: every tensor over the size threshold is uint8"}
    data = data.take(job.options.calibration_samples)
    inputs = PolicyInputs(data, job.plan.tolerance, job.source.classifier_output, Path(job.workdir),
                          job.options.timeout_s)
    with job.progress.step("uint8 tensor policy: compare with float32 in TF.js on calibration inputs"):
        try:
            return choose(probe, inputs, job.progress.note)
        except (RuntimeLoadError, MissingDependencyError) as exc:
            return conv.requantize(probe, fallback, qmap, "int8"), {
                "met": None, "not_measured": f"TF.js could not run for the measurement ({exc}): every tensor "
                                             "over the size threshold is uint8"}


def _add_metadata(model_json: Path, src: Any, precision: str) -> None:
    """Key the graph model's signature by the source names, in the source's order (TF.js feeds
    inputs and returns outputs by these keys, in this order: ``model.outputNodes``), record the
    names and dtypes in model.json's metadata (the runtimes read them) and write it compactly."""
    doc = json.loads(model_json.read_text())
    in_keys, out_keys = _name_maps(doc, src.input_names, src.output_names)
    in_map = {n: _public_key(n, k, "input") for n, k in in_keys.items()}
    out_map = {n: _public_key(n, k, "output") for n, k in out_keys.items()}
    sig = doc["signature"]
    sig["inputs"] = {in_map[n]: sig["inputs"][in_keys[n]] for n in src.input_names}
    sig["outputs"] = {out_map[n]: sig["outputs"][out_keys[n]] for n in src.output_names}
    src_dtypes = {s.name: s.dtype for s in src.input_specs}
    doc.setdefault("userDefinedMetadata", {})[METADATA_KEY] = {
        "inputs": [{"name": n, "key": in_map[n], "dtype": src_dtypes.get(n, "float32"),
                    "served_as": "int32" if src_dtypes.get(n, "").startswith(("int", "uint")) else "float32"}
                   for n in src.input_names],
        "outputs": [{"name": n, "key": out_map[n]} for n in src.output_names],
        "precision": precision,
    }
    _split_addn_with_control_inputs(doc)
    _shorten_node_names(doc)
    # compact separators: model.json is part of the download
    model_json.write_text(json.dumps(doc, separators=(",", ":")))


def _public_key(name: str, key: str, kind: str) -> str:
    """The signature key a source name is served under: the name itself, or onnx2tf's key when
    the name is one not every format carries (an ONNX source's ``input:0``, which TF.js would
    read as output 0 of a node ``input``)."""
    return name if name_problem(name, kind) is None else key


def _split_addn_with_control_inputs(doc: dict[str, Any]) -> None:
    """Rewrite ``AddN`` nodes that carry control inputs (``^name``) as a chain of ``AddV2``.

    tensorflowjs' optimizer merges a recurrent cell's bias adds inside a while loop into
    ``AddN(a, b, ^counter)``; TF.js reads the ``^`` input as a third data input of a variadic op,
    so the sum either fails (``tf.addN() must have the same dtype``: the counter is int32) or,
    were it float, would silently add it in. ``AddV2`` reads exactly two inputs by position, so
    the control input stays attached (keeping the loop's ordering) without being summed.
    """
    nodes = doc["modelTopology"].get("node", [])
    functions = ((doc["modelTopology"].get("library") or {}).get("function") or [])
    groups = [nodes] + [f.get("nodeDef", []) for f in functions]
    for group in groups:
        out = []
        for node in group:
            inputs = node.get("input", [])
            control = [i for i in inputs if i.startswith("^")]
            data = [i for i in inputs if not i.startswith("^")]
            if node.get("op") != "AddN" or not control or len(data) < 2:
                out.append(node)
                continue
            attr = {k: v for k, v in node.get("attr", {}).items() if k != "N"}
            acc = data[0]
            for k, nxt in enumerate(data[1:], 1):
                last = k == len(data) - 1
                name = node["name"] if last else f"{node['name']}/edgeport_add{k}"
                out.append({**{x: y for x, y in node.items() if x not in ("input", "attr", "op", "name")},
                            "name": name, "op": "AddV2", "input": [acc, nxt] + control, "attr": dict(attr)})
                acc = name
        group[:] = out


def _shorten_node_names(doc: dict[str, Any]) -> None:
    """Rename internal nodes ``n0, n1, ...``: TensorFlow's scoped names
    (``StatefulPartitionedCall/model_31/layer_normalization/batchnorm/...``) are a third of a small
    model's download and mean nothing to a page. Inputs and the signature's output nodes keep
    their names. Graphs with functions (control flow) or initializers are left as they are."""
    topo = doc["modelTopology"]
    if (topo.get("library") or {}).get("function") or doc.get("modelInitializer"):
        return
    sig = doc.get("signature") or {}
    keep = {v["name"].split(":")[0] for part in ("inputs", "outputs") for v in (sig.get(part) or {}).values()}
    keep |= {n["name"] for n in topo["node"] if n.get("op") == "Placeholder"}
    new = {}
    for n in topo["node"]:
        if n["name"] not in keep:
            new[n["name"]] = f"n{len(new)}"
    if any(v in keep for v in new.values()):  # a kept name that looks like ours: leave all alone
        return

    def rename(ref: str) -> str:
        ctrl = ref.startswith("^")
        base, sep, port = ref.lstrip("^").partition(":")
        return ("^" if ctrl else "") + new.get(base, base) + sep + port

    for n in topo["node"]:
        n["name"] = new.get(n["name"], n["name"])
        if "input" in n:
            n["input"] = [rename(i) for i in n["input"]]
    for group in doc["weightsManifest"]:
        for w in group["weights"]:
            w["name"] = new.get(w["name"], w["name"])


def _move_dir(src: Path, dst: Path) -> None:
    import shutil

    if dst.exists():
        shutil.rmtree(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(src), str(dst))


def _sanitised(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", name)


def _name_maps(doc: dict[str, Any], input_names: tuple[str, ...],
               output_names: tuple[str, ...]) -> tuple[dict[str, str], dict[str, str]]:
    """Source input/output name -> the graph model's signature key.

    onnx2tf names signature inputs after the ONNX inputs (special characters replaced) and
    outputs ``output_0, output_1, ...`` in ONNX order.
    """
    sig = doc.get("signature") or {}
    in_keys, out_keys = list(sig.get("inputs", {})), list(sig.get("outputs", {}))
    if len(in_keys) != len(input_names) or len(out_keys) != len(output_names):
        raise ConversionError("tfjs", "signature", f"graph model has {len(in_keys)} inputs / {len(out_keys)} "
                              f"outputs, source has {len(input_names)} / {len(output_names)}")
    in_map = {}
    for i, name in enumerate(input_names):
        match = [k for k in in_keys if k == name] or [k for k in in_keys if _sanitised(k) == _sanitised(name)]
        in_map[name] = match[0] if match else in_keys[i]

    def order(key: str) -> tuple[int, str]:
        m = re.search(r"(\d+)$", key)
        return (int(m.group(1)) if m else 0, key)

    by_name = {k: k for k in out_keys if k in output_names}
    if len(by_name) == len(output_names):
        out_map = {n: n for n in output_names}
    else:
        out_map = dict(zip(output_names, sorted(out_keys, key=order)))
    return in_map, out_map


def _facts(doc: dict[str, Any], precision: Precision, src_dtypes: dict[str, str],
           tfjs_version: str) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for group in doc["weightsManifest"]:
        for w in group["weights"]:
            stored = (w.get("quantization") or {}).get("dtype", w.get("dtype", "float32"))
            counts[stored] = counts.get(stored, 0) + 1
    weights = {"fp32": "float32",
               "fp16": "float16 (TF.js weight quantization)",
               "int8": "uint8 with a per-tensor affine (min, scale) for tensors of >= "
                       f"{_uint8_min()} elements, float16 for smaller ones (TF.js weight quantization)"}[precision.value]
    facts: dict[str, Any] = {
        "weights": weights,
        "activations": "float32",
        "compute": "float32" if precision is Precision.FP32 else
                   "float32: storage only, TF.js dequantizes the weights to float32 when the model "
                   "loads, so this shrinks the download, not the run time",
        "storage_only": precision is not Precision.FP32,
        "stored_weight_tensors": counts,
        "layout": "NCHW inputs, as the source model (onnx2tf keeps them; TF.js transposes inside)",
        "converter": f"torch -> ONNX -> onnx2tf SavedModel -> tensorflowjs {tfjs_version} "
                     "convert_tf_saved_model",
    }
    ints = [n for n, d in src_dtypes.items() if d.startswith(("int", "uint"))]
    if ints:
        facts["integer_inputs"] = (f"{', '.join(ints)}: {src_dtypes[ints[0]]} in the source, fed to TF.js as "
                                   "int32 tensors (TF.js has no int64); values must fit in int32")
    return facts


def _uint8_min() -> int:
    from ._tfjs_convert import UINT8_MIN_ELEMENTS

    return UINT8_MIN_ELEMENTS
