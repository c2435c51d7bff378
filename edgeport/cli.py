"""The command line. The only place that turns errors into exit codes:
0 every check passed, 1 an artifact was produced/validated and a check failed, 2 bad input."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from .cli_parser import parser as _parser
from .errors import EdgeportError


def _cmd_targets(args: argparse.Namespace) -> int:
    from .targets.profile import builtin_profiles, load_profile

    if args.ops:
        return _print_ops(load_profile(args.ops), args.json)
    profiles = builtin_profiles()
    if args.json:
        print(json.dumps([{"name": p.name, "format": p.format, "runtime": p.runtime,
                           "precisions": [x.value for x in p.precisions],
                           "default_precision": "auto" if p.auto else p.default_precision.value,
                           "sparsity": p.sparsity, "description": p.description}
                          for p in profiles.values()], indent=2))
        return 0
    rows = [("TARGET", "FORMAT", "RUNTIME", "PRECISIONS", "DEFAULT", "SPARSITY")]
    rows += [(p.name, p.format, p.runtime + ("+" + "+".join(p.extra_runtimes) if p.extra_runtimes else ""),
              ",".join(x.value for x in p.precisions), "auto" if p.auto else p.default_precision.value, f"{p.sparsity:g}")
             for p in profiles.values()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def _cmd_devices(args: argparse.Namespace) -> int:
    from .targets.devices import builtin_devices

    devices = builtin_devices()
    if args.json:
        print(json.dumps([d.to_dict() for d in devices.values()], indent=2))
        return 0
    rows = [("DEVICE", "NAME", "SOC", "THREADS", "FP32 GFLOP/S", "INT8 GOP/S", "ACCELERATORS")]
    rows += [(d.name, d.display, d.soc, str(d.threads), _peak(d.peak("fp32")), _peak(d.peak("int8")),
              ", ".join(a.name for a in d.accelerators) or "-") for d in devices.values()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def _peak(x: float | None) -> str:
    return "n/p" if x is None else f"{x:.1f}"


def _print_ops(profile: object, as_json: bool) -> int:
    from .errors import ConfigError

    runtime = getattr(profile, "runtime")
    if runtime != "coreml-emulator":
        raise ConfigError(f"{getattr(profile, 'name')}: its runtime {runtime} is the real one; it runs every op "
                          "the format defines (see its own documentation)")
    from .validation.runtimes.coreml_emulator import supported_ops

    ops = supported_ops()
    print(json.dumps(ops) if as_json else "\n".join(ops))
    return 0


def _cmd_sign(args: argparse.Namespace) -> int:
    from .validation.signing import sign_bundle

    password = os.environ.get("EDGEPORT_KEY_PASSWORD")
    path = sign_bundle(args.bundle, args.key, password.encode() if password else None)
    print(f"signed {args.bundle}: {path}")
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    from .validation.signing import generate_keypair

    key_id = generate_keypair(args.private_key, args.public_key)
    print(f"wrote {args.private_key} (keep it private) and {args.public_key}; key id {key_id}")
    return 0


def _check_writable(path: str | None) -> None:
    """Refuse an output file we could not write, before any work is done: a probe file is made
    (and removed) in the deepest folder of its path that exists."""
    if not path:
        return
    import tempfile
    from pathlib import Path

    from .errors import ConfigError

    p = Path(path).absolute()
    if p.is_dir():
        raise ConfigError(f"cannot write {path}: it is a folder")
    probe = p.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".edgeport-probe-"):
            pass
        if p.exists() and not os.access(p, os.W_OK):
            raise OSError("not writable")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


def _exit_code(produced: list[bool], passed: list[bool]) -> int:
    """2 when anything could not be produced/read, else 1 when a check failed, else 0."""
    if not all(produced):
        return 2
    return 0 if all(passed) else 1


def _cmd_export(args: argparse.Namespace) -> int:
    import time

    from .compression.request import CompressionRequest
    from .pipeline import export
    from .source_specs import load_source
    from .progress import Progress
    from .validation.render import render_report, render_summary

    _check_writable(args.junit)
    t0 = time.perf_counter()
    request = CompressionRequest(sparsity=args.sparsity, pruning_scope=args.pruning_scope,
                                 pruning_schedule=args.pruning_schedule, prune_channels=args.prune_channels,
                                 channel_multiple=args.channel_multiple, low_rank=args.low_rank,
                                 recover=args.recover, recover_time=args.recover_time,
                                 recover_epochs=args.recover_epochs)
    from .targets.devices import estimating_on

    progress = Progress(enabled=not args.quiet and not args.json)
    model = args.model
    if args.task:
        with progress.step(f"load model {model}"):
            model = load_source(model).with_task(args.task)
    with estimating_on(args.device or ()):
        results = export(model, args.target, precision=_precision(args), compression=request, data=args.data,
                         train_data=args.train_data, out_dir=args.out, progress=progress)
    seconds = time.perf_counter() - t0
    if args.junit:
        from .validation.junit import write_junit

        write_junit(args.junit, [(str(r.bundle), r.report) for r in results if r.report is not None],
                    [(r.target, str(r.error)) for r in results if r.report is None])
    if args.json:
        docs = [dict(r.report.to_dict(), bundle=str(r.bundle), log=str(r.log)) if r.report is not None
                else {"target": r.target, "passed": False, "error": str(r.error), "log": str(r.log)}
                for r in results]
        print(json.dumps(docs[0] if len(docs) == 1 else docs, indent=2, allow_nan=False))
    else:
        for r in results:
            if r.report is not None:
                print(render_report(r.report, str(r.bundle)))
            else:
                print(f"ERROR {r.target}: {r.error}")
        if len(results) > 1:
            print(render_summary([(r.target, r.report, str(r.bundle) if r.bundle else None,
                                   str(r.error) if r.error else None) for r in results], seconds))
    for r in results:
        if r.error is not None:
            print(f"edgeport: error: {r.target}: {r.error}", file=sys.stderr)
    return _exit_code([r.report is not None for r in results], [r.passed for r in results])


def _precision(args: argparse.Namespace):
    """``--precision`` as export takes it: a name, or the auto search's settings."""
    from .errors import ConfigError
    from .search import Auto

    searching = args.objective is not None or args.compress is not None or args.search_time is not None
    if args.precision != "auto":
        if searching:
            raise ConfigError("--objective, --compress and --search-time go with --precision auto")
        return args.precision
    return Auto(objective=args.objective or "size", compress=args.compress == "auto",
                search_time_s=900.0 if args.search_time is None else args.search_time)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .progress import Progress
    from .search import Auto
    from .sweep import SWEEP_JSON, has_train_data, sweep, table

    compress = has_train_data(args.model, args.train_data) if args.compress is None else args.compress == "auto"
    auto = Auto(args.objective, compress, args.search_time)
    result = sweep(args.model, args.target, data=args.data, train_data=args.train_data, out_dir=args.out,
                   auto=auto, progress=Progress(enabled=not args.quiet and not args.json))
    if args.json:
        print(json.dumps(result.doc, indent=2, allow_nan=False))
    else:
        print(table(result.doc))
        print(f"wrote {Path(args.out) / SWEEP_JSON}, {len(result.files) - 2} plot(s), {result.files[-1]}")
    produced = [r.report is not None for r in result.results]
    return _exit_code(produced, [r.passed for r in result.results])


def _cmd_validate(args: argparse.Namespace) -> int:
    from .recheck import validate_bundle
    from .progress import Progress
    from .validation.render import render_report

    _check_writable(args.junit)
    from .targets.devices import load_device

    for name in args.device or ():   # a bad --device is bad input, before any bundle is read
        load_device(name)
    reports, errors = [], []
    for b in args.bundles:
        try:
            reports.append((b, validate_bundle(b, Progress(enabled=not args.quiet and not args.json),
                                               public_key=args.verify, devices=args.device)))
        except EdgeportError as exc:  # one unreadable bundle does not stop the others
            errors.append((b, str(exc)))
    if args.junit:
        from .validation.junit import write_junit

        write_junit(args.junit, reports, errors)
    if args.json:
        docs = [dict(r.to_dict(), bundle=b) for b, r in reports] + \
               [{"bundle": b, "passed": False, "error": e} for b, e in errors]
        print(json.dumps(docs[0] if len(docs) == 1 else docs, indent=2, allow_nan=False))
    else:
        for b, r in reports:
            print(render_report(r, b))
    for b, e in errors:
        print(f"edgeport: error: {e}", file=sys.stderr)
    return _exit_code([True] * len(reports) + [False] * len(errors), [r.passed for _, r in reports])


def _cmd_run(args: argparse.Namespace) -> int:
    from .recheck import run_artifact

    outputs = run_artifact(args.artifact, args.data, args.out, args.runtime, args.threads, args.timeout)
    for name, arr in outputs.items():
        print(f"{name}: shape {tuple(arr.shape)} dtype {arr.dtype}")
    if args.out:
        print(f"wrote {args.out}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from .crosscheck import compare
    from .progress import Progress
    from .validation.comparison_render import render_comparison, write_comparison_junit

    _check_writable(args.junit)
    result = compare(args.artifacts, args.data, reference=args.reference, tolerance=args.tolerance,
                     timeout_s=args.timeout, progress=Progress(enabled=not args.quiet and not args.json))
    if args.junit:
        write_comparison_junit(args.junit, result)
    print(json.dumps(result.to_dict(), indent=2, allow_nan=False) if args.json else render_comparison(result))
    return 0 if result.passed else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # what converters print (TensorFlow's C++ lines, coremltools' bars and notices...) goes to each
    # target's log file, not here: the library does that for the API and the CLI alike
    handler = {"sweep": _cmd_sweep, "devices": _cmd_devices, "targets": _cmd_targets, "export": _cmd_export, "validate": _cmd_validate, "run": _cmd_run,
               "sign": _cmd_sign, "keygen": _cmd_keygen, "compare": _cmd_compare}
    from .validation.staging import Terminated, sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            return handler[args.command](args)
    except EdgeportError as exc:
        print(f"edgeport: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated as exc:
        print(f"edgeport: terminated by signal {exc.signum}; nothing half-written was kept", file=sys.stderr)
        return 128 + int(exc.signum)
    except KeyboardInterrupt:
        print("edgeport: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # user code (a factory) calling sys.exit must not decide the exit code
        print(f"edgeport: error: the model code called sys.exit({exc.code!r}) while loading", file=sys.stderr)
        return 2
    except Exception as exc:  # an unexpected failure still gets one line; the traceback on request
        if os.environ.get("EDGEPORT_DEBUG"):
            raise
        msg = str(exc).strip().splitlines()
        print(f"edgeport: error: {type(exc).__name__}: {msg[0] if msg else ''} "
              "(set EDGEPORT_DEBUG=1 for the traceback)", file=sys.stderr)
        return 2


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
