"""Re-checking what was made: a bundle's validation (hashes, signature, re-run, tolerances) and
the run of any artifact on an npz of inputs."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .data import check_against, load_npz
from .errors import ConfigError, ConversionError, EdgeportError, ModelLoadError, RuntimeLoadError
from .formats import Artifact, get_format
from .source_data import RUN_TIMEOUT_S
from .precision import Precision
from .progress import Progress
from .targets.profile import Plan, with_devices
from .validation.bundle import GOLDEN, MANIFEST_MAX_BYTES, REPORT, check_integrity, read_inside
from .validation.golden import read_golden
from .validation.judge import Subject, evaluate
from .validation.report import Check, Compression, Report
from .version import __version__


def validate_bundle(bundle: str | Path, progress: Progress | None = None,
                    public_key: str | Path | None = None, devices: Sequence[str] | None = None) -> Report:
    """Re-hash every file (and, with ``public_key``, verify the bundle's signature), then re-run
    the artifact on the golden inputs and re-apply the tolerances and budgets. Nothing is parsed
    or run once integrity or the signature fails. ``devices`` adds latency estimates for them to
    the ones the bundle's plan names."""
    progress = progress or Progress(False)
    root = Path(bundle)
    integrity = check_integrity(root)
    manifest = integrity.manifest
    try:
        plan = Plan.from_dict(manifest["plan"])
        art = manifest["artifact"]
        src = manifest["source"]
        fmt = get_format(art["format"])
        artifact = Artifact(fmt.name, root, str(art["entry"]), Precision.parse(art["precision"]),
                            tuple(str(s["name"]) for s in src["inputs"]), tuple(str(o) for o in src["outputs"]),
                            fp32_bytes=art.get("fp32_bytes"))
        subject = Subject(str(manifest["model"]), str(src["task"]),
                          artifact.output_names[0] if src["task"] == "classification" else None,
                          version=__version__, task_basis=str(src.get("task_basis") or ""))
    except (KeyError, TypeError, IndexError, AttributeError, EdgeportError) as exc:
        raise ModelLoadError(f"{root / 'manifest.json'} is not a readable edgeport manifest: {exc}") from exc
    plan = with_devices(plan, devices)
    checks = [Check("integrity", integrity.ok, integrity.detail())]
    if public_key is not None:
        from .validation.signing import verify_bundle_signature

        sig = verify_bundle_signature(root, public_key, integrity.manifest_bytes)
        checks.append(Check("signature", sig.ok, sig.reason))
    if not all(c.passed for c in checks):
        return _failed_report(subject, plan, checks)
    try:
        golden = read_golden(root / GOLDEN, list(artifact.output_names))
    except EdgeportError as exc:
        return _failed_report(subject, plan, checks + [Check("golden", False, f"cannot read {GOLDEN}: {exc}")])
    stored = _stored_report(root)
    artifact = replace(artifact, facts=stored.get("precision_facts") or {})
    compression = stored.get("compression")
    try:
        report = evaluate(artifact, plan, golden, subject, progress=progress,
                          compression=Compression(tuple(compression["steps"]), compression.get("recovery"))
                          if isinstance(compression, dict) and isinstance(compression.get("steps"), list) else None)
    except (RuntimeLoadError, ConversionError, ValueError) as exc:
        return _failed_report(subject, plan, checks + [Check("rerun", False, f"{artifact.entry}: {exc}")])
    return replace(report, checks=tuple(checks) + report.checks)


def _stored_report(root: Path) -> dict[str, Any]:
    """The report written at export (read only once its hash matched the manifest)."""
    import json

    try:
        doc = json.loads(read_inside(root, REPORT, MANIFEST_MAX_BYTES))
    except (EdgeportError, OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _failed_report(subject: Subject, plan: Plan, checks: list[Check]) -> Report:
    return Report(edgeport_version=__version__, model=subject.model, target=plan.target, format=plan.format,
                  runtime=plan.runtime, precision=plan.precision.value, sparsity=plan.sparsity, size=None,
                  parity=None, accuracy=None, latency=None, ops=None, checks=tuple(checks))


def run_artifact(artifact: str | Path, data: str | Path, out: str | Path | None = None,
                 runtime: str | None = None, threads: int = 1, timeout_s: float = RUN_TIMEOUT_S) -> dict[str, np.ndarray]:
    """Run any artifact on an npz of inputs (first axis = samples); write outputs to ``out``.
    The run happens in a child process bounded by ``timeout_s``."""
    from .isolated_call import call_isolated
    from .validation.runtimes import runtime_for_path

    path = Path(artifact)
    if not path.exists():
        raise ModelLoadError(f"no such artifact: {path}")
    if threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {threads}")
    name = runtime or runtime_for_path(path)
    outputs = call_isolated(_run_once, (name, path, Path(data), threads), timeout_s, name)
    if out is not None:
        out_path = Path(out)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.with_name(f".{out_path.name}.partial.npz")
        try:
            np.savez_compressed(tmp, **outputs)
            tmp.replace(out_path)
        finally:
            tmp.unlink(missing_ok=True)
    return outputs


def _run_once(name: str, path: Path, data: Path, threads: int) -> dict[str, np.ndarray]:
    from .validation.runtimes import get_runtime

    session = get_runtime(name).load(path, threads=threads)
    try:
        ds = load_npz(data, [s.name for s in session.input_specs])
        check_against(ds, [(s.name, s.shape, s.dtype) for s in session.input_specs])
        return session.predict(ds)
    finally:
        session.close()
