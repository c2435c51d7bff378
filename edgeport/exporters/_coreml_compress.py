"""Weight compression of a converted ML Program with coremltools.optimize.coreml, and the count
of what was compressed, read back from the program itself."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..errors import ConfigError, ConversionError

if TYPE_CHECKING:  # pragma: no cover
    from ._coreml_policy import PolicyInputs

# Store a pruned tensor sparsely only when it pays: fp16 nonzeros + a 1-bit mask beat dense fp16
# from ~6 % zeros on; below 10 % the saving is noise.
MIN_SPARSITY = 0.1


#: channels sharing one lookup table with per-grouped-channel palettes (iOS18 programs)
PALETTE_GROUP = 16


def compress(mlmodel: Any, precision: str, sparsity: float, deployment_target: str,
             weight_threshold: int, policy: "PolicyInputs | None" = None,
             note: Callable[[str], None] | None = None) -> tuple[Any, dict[str, Any]]:
    """Apply int8 / lut8 / lut4 and sparse storage; returns (model, facts about what was done).

    With ``policy`` (calibration inputs and the parity criteria) and no sparse storage, which
    tensors stay float is measured (:mod:`._coreml_policy`) rather than ruled by
    ``weight_threshold`` alone."""
    import coremltools.optimize.coreml as cto

    facts: dict[str, Any] = {}
    ios18 = deployment_target == "iOS18"
    model = mlmodel
    if policy is not None and sparsity == 0 and precision in ("int8", "lut8", "lut4"):
        try:
            return _measured(mlmodel, precision, ios18, policy, note)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConversionError("coreml", f"CoreML weight compression ({precision}, measured tensor policy)",
                                  f"{type(exc).__name__}: {exc}") from exc
    try:
        if sparsity > 0:
            # the torch-level pruning already wrote the zeros; a near-zero threshold only marks them
            cfg = cto.OpThresholdPrunerConfig(threshold=1e-12, minimum_sparsity_percentile=MIN_SPARSITY,
                                              weight_threshold=weight_threshold)
            model = cto.prune_weights(model, cto.OptimizationConfig(global_config=cfg))
            facts["sparse_storage"] = (f"zeros stored as a bit mask (constexpr_sparse_to_dense) in tensors "
                                       f"with >= {MIN_SPARSITY:.0%} zeros")
        joint = sparsity > 0 and precision in ("int8", "lut8", "lut4")
        if joint and not ios18:
            # iOS16/17 cannot stack quantization on sparse storage: the quantized form wins, the
            # zeros are then stored as quantized zeros (dense)
            model = mlmodel
            facts["sparse_storage"] = (f"not used: combining sparse storage with {precision} needs "
                                       "deployment_target iOS18; zeros stored densely as quantized values")
            joint = False
        if precision == "int8":
            # the fixed rule (no calibration data, or tensor_policy "all"): affine, which copes
            # better with every small tensor compressed
            cfg = _int8_config(weight_threshold, affine=True)
            model = cto.linear_quantize_weights(model, cto.OptimizationConfig(global_config=cfg),
                                                **({"joint_compression": True} if joint else {}))
            facts["weights"] = "int8 affine (scale + zero point per output channel)"
        elif precision in ("lut8", "lut4"):
            cfg, facts["weights"] = _palette_config(precision, ios18 and not joint, weight_threshold)
            model = cto.palettize_weights(model, cto.OptimizationConfig(global_config=cfg),
                                          **({"joint_compression": True} if joint else {}))
    except ConfigError:
        raise
    except Exception as exc:
        raise ConversionError("coreml", f"CoreML weight compression ({precision}, sparsity {sparsity})",
                              f"{type(exc).__name__}: {exc}") from exc
    return model, facts


def _int8_config(weight_threshold: int, affine: bool = False) -> Any:
    """Per-channel int8. Symmetric (a scale per output channel, coremltools' own default) unless
    ``affine`` (a zero point too): compressing *every* tensor of EfficientNet-Lite0, affine kept
    top-1 agreement 0.97 vs symmetric 0.92 on its 64 evaluation images, but with the measured
    tensor policy keeping its few sensitive small kernels fp16, symmetric reached 0.97 (cosine
    0.9985) in fewer bytes than coremltools' default — the zero points cost 18 KB."""
    import coremltools.optimize.coreml as cto

    return cto.OpLinearQuantizerConfig(mode="linear" if affine else "linear_symmetric", dtype="int8",
                                       granularity="per_channel", weight_threshold=weight_threshold)


def _palette_config(precision: str, grouped: bool, weight_threshold: int, channels: int = 0) -> tuple[Any, str]:
    """k-means palettes: one table per group of output channels on iOS18 programs
    (``per_grouped_channel``: :data:`PALETTE_GROUP`, or the largest power of two dividing
    ``channels`` — coremltools leaves a tensor whose channels the group does not divide fp16),
    else one per tensor (what iOS16/17 can store)."""
    import coremltools.optimize.coreml as cto

    nbits = 8 if precision == "lut8" else 4
    if grouped:
        group = _group(channels) if channels else PALETTE_GROUP
        cfg = cto.OpPalettizerConfig(mode="kmeans", nbits=nbits, granularity="per_grouped_channel",
                                     group_size=group, weight_threshold=weight_threshold)
        return cfg, (f"{nbits}-bit palettized (k-means, one {2 ** nbits}-entry table per {PALETTE_GROUP} "
                     "output channels: per_grouped_channel, iOS18)")
    cfg = cto.OpPalettizerConfig(mode="kmeans", nbits=nbits, granularity="per_tensor",
                                 weight_threshold=weight_threshold)
    return cfg, f"{nbits}-bit palettized (k-means, one {2 ** nbits}-entry table per tensor)"


def _group(channels: int) -> int:
    group = PALETTE_GROUP
    while group > 1 and channels % group:
        group //= 2
    return group


def _measured(mlmodel: Any, precision: str, ios18: bool, policy: "PolicyInputs",
              note: Callable[[str], None] | None) -> tuple[Any, dict[str, Any]]:
    """int8 / lut with the tensors kept float (or, for lut4, in 8 bits) chosen by
    :func:`._coreml_policy.choose`."""
    import coremltools.optimize.coreml as cto

    from ._coreml_policy import choose
    from ._coreml_sensitivity import blob_bytes

    shapes: dict[str, tuple[int, ...]] = {}
    ops: dict[str, str] = {}
    for op in mlmodel._mil_program.functions["main"].operations:  # noqa: SLF001 - op names for the config
        if op.op_type == "const":
            ops[op.outputs[0].name] = op.name
            shapes[op.name] = tuple(int(d) for d in np.shape(op.outputs[0].val))

    def palette_bytes(nbits: int) -> Callable[[tuple[int, ...]], int]:
        def stored(shape: tuple[int, ...]) -> int:  # packed indices + fp16 tables
            tables = -(-shape[0] // _group(shape[0])) if ios18 else 1
            return blob_bytes(-(-int(np.prod(shape)) * nbits // 8), tables * 2 * 2 ** nbits)
        return stored

    fallback = None
    nbits = 8 if precision in ("int8", "lut8") else 4
    if precision == "int8":
        weights = "int8 symmetric (a scale per output channel)"
        apply, base = cto.linear_quantize_weights, _int8_config(0)

        def config(name: str, nbits: int) -> Any:
            return base

        def stored(shape: tuple[int, ...]) -> int:  # int8 values and an fp16 scale per channel
            return blob_bytes(int(np.prod(shape)), 2 * shape[0])
    else:
        _, weights = _palette_config(precision, ios18, 0)
        apply, stored = cto.palettize_weights, palette_bytes(nbits)
        if nbits == 4:  # a sensitive tensor is kept in 8 bits: a third of fp16's bytes
            fallback = ("lut8", palette_bytes(8))

        def config(name: str, bits: int) -> Any:
            channels = shapes.get(name, (0,))[0] if shapes.get(name) else 0
            return _palette_config("lut8" if bits == 8 else "lut4", ios18, 0, channels)[0]

    def make(fp16_names: Any, fallback_names: Any) -> Any:
        by_name: dict[str, Any] = {}
        if precision != "int8" and ios18:  # group sizes that divide each tensor's channels
            by_name.update({name: config(name, nbits) for name, shape in shapes.items() if len(shape) >= 2})
        by_name.update({ops.get(n, n): config(ops.get(n, n), 8) if fallback else None for n in fallback_names})
        by_name.update({ops.get(n, n): None for n in fp16_names})
        return apply(mlmodel, cto.OptimizationConfig(global_config=config("", nbits), op_name_configs=by_name))

    # 4-bit palettes shift layer outputs enough to matter; the biases absorb it (no bytes)
    result = choose(mlmodel, make, stored, policy, fallback, note, bias_correction=nbits == 4)
    kept = result.facts["kept_float"]
    if kept:
        how = ", ".join(f"{sum(k['as'] == a for k in kept)} in {a}" for a in dict.fromkeys(k["as"] for k in kept))
        weights += f"; {len(kept)} tensors kept less compressed by the measured policy ({how}, "
        weights += f"{result.facts['float_bytes']} bytes)"
    return result.model, {"weights": weights, "tensor_policy": result.facts}


def count_weights(spec: Any) -> dict[str, Any]:
    """How many weight tensors the saved program stores compressed (behind constexpr ops) and how
    many it leaves as plain float constants, with the names of the latter."""
    fn = spec.mlProgram.functions["main"]
    ops = fn.block_specializations[fn.opset].operations
    consumers: dict[str, set[str]] = {}
    for op in ops:
        for binding in op.inputs.values():
            for arg in binding.arguments:
                if arg.name:
                    consumers.setdefault(arg.name, set()).add(op.type)
    compressed: dict[str, int] = {}
    plain: list[str] = []
    for op in ops:
        out = op.outputs[0].name if op.outputs else ""
        users = consumers.get(out, set())
        final = users and not all(u.startswith("constexpr_") for u in users)
        if op.type.startswith("constexpr_") and final:
            compressed[op.type] = compressed.get(op.type, 0) + 1
        elif op.type == "const" and final:
            t = op.outputs[0].type.tensorType
            numel = 1
            for d in t.dimensions:
                numel *= d.constant.size
            if t.dataType in (10, 11) and t.rank >= 1 and numel > 1:  # FLOAT16 / FLOAT32 tensors
                plain.append(out)
    return {"weight_tensors_compressed": sum(compressed.values()), "compressed_by_op": compressed,
            "weight_tensors_left_float": len(plain), "left_float": plain[:20]}
