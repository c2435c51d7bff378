"""ios-coreml: edgeport's CoreML exports beside plain coremltools defaults, judged by the
coreml-emulator, and the emulator's time beside onnxruntime's on the same model and inputs.

    python benchmarks/bench_coreml.py [--real] [--only NAME ...]
        # --real adds MiniLM (fp16) and EfficientNet-Lite0 (fp32, fp16); --only keeps the named models

Every emulator row also times one sample against onnxruntime fp32 (batch 1, 1 thread, runs
alternating in one loop): the "emulator vs onnxruntime" table.

Sizes count every file of the .mlpackage folder. "by hand" rows are what a user gets from
``coremltools.convert(torch.export program)`` with its defaults (and the optimize calls with
their defaults, which skip tensors under 2048 elements).
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json  # noqa: E402

PRECISIONS = ("fp32", "fp16", "int8", "lut8", "lut4")


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def judge(source, data, reference, path: Path) -> tuple[dict, object]:
    """Parity / accuracy of the package at ``path`` in the emulator, and the session."""
    from edgeport.validation.metrics import ErrorStats, top1_accuracy, top1_agreement
    from edgeport.validation.runtimes import get_runtime

    sess = get_runtime("coreml-emulator").load(path)
    names = [s.name for s in sess.input_specs]
    feed = type(data)(dict(zip(names, (data.inputs[n] for n in source.input_names))), data.labels)
    got = next(iter(sess.predict(feed).values()))
    ref = reference[source.output_names[0]]
    stats = ErrorStats.from_arrays("out", ref, got)
    row = {"cos_min": stats.cosine_min, "max_abs_rel": stats.max_abs_rel}
    if source.task == "classification":
        row["agreement"] = top1_agreement(ref, got)
        if data.labels is not None:
            row["accuracy"] = top1_accuracy(got, data.labels)
    return row, sess


def best_time(fn, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3


def batch1_ratio(sess, ort_sess, source, data, repeats: int = 20) -> dict:
    """One sample, 1 thread: the emulator and onnxruntime fp32 timed alternately in one loop
    (so both see the same load on a shared host); best of ``repeats`` wall-clock and CPU time."""
    feed = data.sample(0)
    emu_feed = {s.name: feed[n] for s, n in zip(sess.input_specs, source.input_names)}
    best = {"emu": [float("inf")] * 2, "ort": [float("inf")] * 2}
    for _ in range(repeats):
        for key, run in (("emu", lambda: sess.run(emu_feed)), ("ort", lambda: ort_sess.run(None, feed))):
            t0, c0 = time.perf_counter(), time.process_time()
            run()
            best[key][0] = min(best[key][0], time.perf_counter() - t0)
            best[key][1] = min(best[key][1], time.process_time() - c0)
    return {"b1_emu_ms": best["emu"][0] * 1e3, "b1_ort_ms": best["ort"][0] * 1e3,
            "b1_emu/ort": best["emu"][0] / best["ort"][0], "b1_emu/ort_cpu": best["emu"][1] / best["ort"][1]}


def ort_session(source, workdir: Path):
    import onnxruntime as ort

    from edgeport.exporters.torch_to_onnx import torch_to_onnx

    path = torch_to_onnx(source.module, source.example_inputs, source.input_names, source.output_names,
                         workdir / f"{source.name}.onnx")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def ours(source, data, reference, precisions, workdir: Path, ort_ms: float, ort_sess) -> list[dict]:
    from edgeport.exporters import ExportJob, get_exporter
    from edgeport.progress import SILENT
    from edgeport.targets.profile import load_profile, resolve_plan

    rows, fp32_bytes = [], None
    for p in precisions:
        out = workdir / f"{source.name}-{p}"
        t0 = time.perf_counter()
        plan = resolve_plan(load_profile("ios-coreml"), precision=p)
        art = get_exporter("coreml").export(ExportJob(source, source.module, plan, source.calibration_data,
                                                      SILENT, out), out)
        row = {"model": source.name, "precision": p, "export_s": time.perf_counter() - t0,
               "bytes": art.total_bytes(), "compressed": art.facts["weight_tensors_compressed"],
               "left_float": art.facts["weight_tensors_left_float"]}
        fp32_bytes = fp32_bytes or (row["bytes"] if p == "fp32" else None)
        row["ratio"] = row["bytes"] / fp32_bytes if fp32_bytes else None
        judged, sess = judge(source, data, reference, art.path)
        row.update(judged)
        row["emu_ms"] = best_time(lambda: sess.predict(data))
        row["ort_fp32_ms"] = ort_ms
        row["emu/ort"] = row["emu_ms"] / ort_ms
        row["batching"] = sess.batching.get("mode")
        row.update(batch1_ratio(sess, ort_sess, source, data))
        rows.append(row)
    return rows


def by_hand(source, data, reference, workdir: Path, fp32_bytes: int) -> list[dict]:
    import torch

    from edgeport.exporters._coreml_convert import import_coremltools

    ct = import_coremltools()
    import coremltools.optimize.coreml as cto

    args = tuple(torch.from_numpy(x) for x in source.example_inputs)
    rows = []
    try:
        program = torch.export.export(source.module.eval(), args).run_decompositions({})
        base = ct.convert(program, convert_to="mlprogram")
    except Exception as exc:  # e.g. MiniLM: coremltools has no converter for an op
        return [{"model": source.name, "precision": "by hand: convert()", "error": str(exc).splitlines()[-1][:70]}]
    variants = {"by hand: convert() (fp16)": base,
                "by hand: + linear_quantize_weights()": cto.linear_quantize_weights(
                    base, cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig())),
                "by hand: + palettize_weights(nbits=4)": cto.palettize_weights(
                    base, cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(nbits=4)))}
    for label, model in variants.items():
        path = workdir / f"{source.name}-{len(rows)}-hand.mlpackage"
        model.save(str(path))
        row = {"model": source.name, "precision": label, "bytes": folder_bytes(path)}
        row["ratio"] = row["bytes"] / fp32_bytes
        judged, sess = judge(source, data, reference, path)
        row.update(judged)
        row["compressed"] = sum(sess.interpreter.decompressed.values())
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", action="store_true", help="add MiniLM and EfficientNet-Lite0")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these sample models")
    args = parser.parse_args()
    from edgeport.sample_models import load_sample

    plan = [("digits_cnn", PRECISIONS, None), ("text_transformer", PRECISIONS, None)]
    if args.real:
        plan += [("minilm", ("fp16",), None), ("efficientnet_lite0", ("fp32", "fp16"), 16)]
    if args.only:
        plan = [p for p in plan if p[0] in args.only]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for name, precisions, limit in plan:
            source = load_sample(name)
            data = source.eval_data.take(limit)
            reference = source.reference(data)
            ort_sess = ort_session(source, workdir)
            ort_ms = best_time(lambda: [ort_sess.run(None, data.sample(i)) for i in range(len(data))])
            mine = ours(source, data, reference, precisions, workdir, ort_ms, ort_sess)
            rows += mine
            fp32 = next((r["bytes"] for r in mine if r["precision"] == "fp32"), None)
            if fp32 and source.task == "classification":
                rows += by_hand(source, data, reference, workdir, fp32)
    columns = ["model", "precision", "bytes", "ratio", "compressed", "left_float", "agreement", "accuracy",
               "cos_min", "max_abs_rel", "emu_ms", "ort_fp32_ms", "emu/ort", "batching"]
    print_table(rows, columns)
    print("\nemulator vs onnxruntime fp32, batch 1, 1 thread (alternating runs, best of 20)")
    print_table([r for r in rows if "b1_emu_ms" in r],
                ["model", "precision", "b1_emu_ms", "b1_ort_ms", "b1_emu/ort", "b1_emu/ort_cpu"])
    write_json("coreml", {"host": platform.platform(), "processor": platform.processor(),
                          "note": "emu_ms: whole eval set through the coreml-emulator (numpy, 1 BLAS thread); "
                                  "ort_fp32_ms: onnxruntime fp32, one call per sample, 1 thread, same inputs. "
                                  "b1_*: one sample, emulator and onnxruntime fp32 run alternately in one loop, "
                                  "best of 20 wall-clock (b1_emu/ort) and CPU time (b1_emu/ort_cpu). "
                                  "Emulator times are not iPhone figures.",
                          "rows": rows})


if __name__ == "__main__":
    main()
