"""The table of known conversion failures: what the converter's message looks like -> what to do.

Data, read top to bottom: the first entry whose ``pattern`` (a regular expression, case-blind,
``.`` spanning lines) is found in the failure's text gives the hint. The text searched is

    format=<format> precision=<precision> stage=<stage> op=<op or ->
    <the converter's whole message>

so an entry can be about one format, one precision or one stage. Each entry is a failure seen
on the toolchain edgeport pins (or, for XNNPACK's PReLU, reported by LiteRT users); the hint
says what a user can change in the model or on the command line.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KnownFailure:
    name: str
    pattern: str
    hint: str


KNOWN_FAILURES: tuple[KnownFailure, ...] = (
    KnownFailure(
        "complex numbers", r"complex-valued|complex(64|128)|Complex(Float|Double)|view_as_complex|complex (number|tensor)",
        "ONNX, TFLite, CoreML and TF.js have no complex tensors: carry real and imaginary parts as two "
        "real tensors (torch.view_as_real; exp(iθ) as cos θ and sin θ; a DFT as a matmul with cos/sin "
        "matrices)"),
    KnownFailure(
        "data-dependent control flow", r"data-dependent|GuardOnDataDependentSymNode|could not guard on",
        "the model branches on a tensor's value (if x.sum() > 0, .item(), a size read from data), and "
        "export records one path only: use torch.where, or torch.cond for real branches"),
    KnownFailure(
        "Erf on TFLite (exact GELU)", r"format=tflite .*\b(tf\.)?Erf\b",
        "erf, exact GELU's building block, has no TFLite builtin kernel (only a TensorFlow Select op the "
        "app would have to bundle): use nn.GELU (edgeport maps it to TFLite's GELU builtin) or "
        "nn.GELU(approximate='tanh') instead of a hand-written erf"),
    KnownFailure(
        "Erfc on TF.js", r"format=tfjs .*\bErfc\b",
        "TF.js has no Erfc kernel (it comes from torch.special.erfc, or from exact GELU written as "
        "TensorFlow's gelu): write erfc(x) as 1 - erf(x), or use nn.GELU(approximate='tanh')"),
    KnownFailure(
        "TFLiteConverter int8 calibration crash", r"format=tflite precision=int8 .*(SIGSEGV|SIGBUS|SIGABRT|crashed)",
        "TensorFlow's int8 calibrator crashes on some graphs, While loops in particular (a GRU/LSTM "
        "longer than the 512 steps edgeport unrolls stays one): use --precision int8-dynamic (int8 "
        "weights, float activations) or fp16, or a shorter sequence"),
    KnownFailure(
        "recurrent ops in static int8",
        r"precision=int8 .*(\bGRU\b|\bLSTM\b|\bRNN\b|\bWhile\b|\bLoop\b|UNIDIRECTIONAL_SEQUENCE|recurrent)",
        "recurrent layers (GRU/LSTM and the Loop/While ops they become) have no static int8 kernels "
        "here: use --precision int8-dynamic or fp16"),
    KnownFailure(
        "XNNPACK and PReLU", r"XNNPACK.*PRELU|PRELU.*(XNNPACK|delegate)|\(PRELU\) failed",
        "LiteRT's XNNPACK delegate takes PReLU only with one slope or one per channel (the last axis "
        "once NHWC): use nn.PReLU() with a single slope, or LeakyReLU"),
    KnownFailure(
        "coremltools stalls", r"format=coreml .*did not finish within",
        "coremltools can stall on some graphs (seen here: Conv1d + PReLU at fp16): try --precision fp32, "
        "LeakyReLU instead of PReLU, or a longer timeout_s in a copy of the profile"),
    KnownFailure(
        "op without a CoreML conversion", r"convert function for op '\w+' not implemented",
        "coremltools has no conversion for this op: rewrite it with common ops, or register one with "
        "coremltools' @register_torch_op"),
    KnownFailure(
        "TF Select op on TFLite", r"format=tflite .*(neither a custom op nor a flex op|select tf op|TF Select ops)",
        "the op has no TFLite builtin kernel (only a TensorFlow Select op the app would have to bundle): "
        "rewrite it with common ops"),
    KnownFailure(
        "op without a TF.js kernel", r"Unsupported Ops in the model",
        "TF.js runs only the ops it implements: rewrite this one with common ops"),
    KnownFailure(
        "dtype mismatch",
        r"same dtype|dtypes? mismatch|type mismatch|mismatched types|incompatible types|expected scalar type"
        r"|must have the same type",
        "two tensors of different dtypes meet in one op (int64 ids against int32, a float64 constant...): "
        "cast explicitly in forward (ids.int(), x.float(), torch.tensor(..., dtype=torch.float32))"),
    KnownFailure(
        "op without an ONNX export", r"no ONNX export for aten::",
        "torch's ONNX exporter has no translation for this op: rewrite it with common ops"),
    KnownFailure(
        "timeout", r"did not finish within",
        "the step outlived the profile's timeout_s: raise it in a copy of the profile, or try another "
        "precision"),
)
