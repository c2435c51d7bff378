"""The command line's arguments: every subcommand and flag, with its help."""
from __future__ import annotations

import argparse

from .version import __version__


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgeport", description="Export a PyTorch model to an edge target "
                                "and prove the artifact in the target's runtime.")
    p.add_argument("--version", action="version", version=f"edgeport {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("devices", help="list the devices latency can be estimated for")
    d.add_argument("--json", action="store_true", help="print JSON")

    t = sub.add_parser("targets", help="list target profiles")
    t.add_argument("--json", action="store_true", help="print JSON")
    t.add_argument("--ops", metavar="TARGET", help="list the ops the target's validation runtime runs "
                   "(ios-coreml: the emulator's MIL ops)")

    e = sub.add_parser("export", help="export, validate and bundle a model for one or more targets")
    e.add_argument("model", help="sample:NAME | file.py:factory | package.module:factory | model.onnx | model.pt2")
    e.add_argument("--target", "-t", action="append", required=True,
                   help="target name (repeatable) or 'all'; see 'edgeport targets'")
    e.add_argument("--precision", "-p", help="fp32 | fp16 | bf16 | int8 | int8-dynamic | lut8 | lut4 | auto "
                   "(default: the target's); auto judges the target's candidates and bundles the pick")
    e.add_argument("--objective", choices=("size", "latency"),
                   help="with --precision auto: fewest bytes (default) or lowest p50 among the candidates that fit")
    e.add_argument("--compress", choices=("auto", "none"),
                   help="with --precision auto: also try channel pruning + distillation candidates")
    e.add_argument("--search-time", type=float, metavar="S",
                   help="with --precision auto: seconds the search may take per target (default 900)")
    e.add_argument("--sparsity", type=float, help="magnitude pruning level in [0, 1) (default: the target's)")
    e.add_argument("--pruning-scope", choices=("layer", "global"), help="per-layer or global magnitude ranking")
    e.add_argument("--pruning-schedule", choices=("one-shot", "gradual"),
                   help="magnitude pruning at once, or gradually while --recover trains")
    e.add_argument("--prune-channels", type=float, metavar="R",
                   help="structured pruning: remove this share of conv channels / MLP neurons, in [0, 0.95]")
    e.add_argument("--channel-multiple", type=int, metavar="N",
                   help="round kept channel counts to a multiple of N (default: the target's)")
    e.add_argument("--low-rank", type=float, metavar="E",
                   help="factorize Linear / 1x1 conv layers by SVD, keeping this share of energy (e.g. 0.9)")
    e.add_argument("--recover", choices=("kd", "finetune", "none"),
                   help="after lossy compression: distil from the original model (labels optional), "
                        "fine-tune on labels, or nothing")
    e.add_argument("--recover-time", type=float, metavar="S", help="seconds recovery may train (default 120)")
    e.add_argument("--recover-epochs", type=int, metavar="N",
                   help="epochs recovery may train (default 30; early stopping and --recover-time still end it)")
    e.add_argument("--train-data", metavar="FILE.npz",
                   help="what recovery trains on (inputs like --data, labels optional; default: a sample's "
                        "own train split); the --data eval split is never trained on")
    e.add_argument("--data", help="FILE.npz: inputs named like the model's (or x), optional labels")
    e.add_argument("--task", choices=("classification", "segmentation", "regression", "embedding"),
                   help="what the model does (default: a first output shaped [N, C] is assumed to be a "
                        "classifier's and its top-1 agreement checked; the report says so)")
    e.add_argument("--device", action="append", metavar="NAME", help="also estimate latency on this device "
                   "(repeatable): a name from 'edgeport devices' or a device TOML file")
    e.add_argument("-o", "--out", default="out", help="output folder for bundles (default: out)")
    e.add_argument("--json", action="store_true", help="print the report(s) as JSON")
    e.add_argument("--junit", metavar="FILE.xml", help="also write the checks as JUnit XML (for CI)")
    e.add_argument("--quiet", "-q", action="store_true", help="no progress lines")

    w = sub.add_parser("sweep", help="judge every precision (x compression) of each target; table, "
                       "sweep.json, Pareto plots, sweep.html; the auto pick is bundled")
    w.add_argument("model", help="as for export")
    w.add_argument("--target", "-t", action="append", required=True, help="target name (repeatable) or 'all'")
    w.add_argument("--data", help="FILE.npz, as for export")
    w.add_argument("--train-data", metavar="FILE.npz", help="what compression candidates distil on")
    w.add_argument("--objective", choices=("size", "latency"), default="size", help="what the pick minimises")
    w.add_argument("--compress", choices=("auto", "none"),
                   help="channel pruning + distillation candidates (default: auto when there is train data)")
    w.add_argument("--search-time", type=float, default=600.0, metavar="S", help="seconds per target (default 600)")
    w.add_argument("-o", "--out", default="out", help="output folder (default: out)")
    w.add_argument("--json", action="store_true", help="print sweep.json")
    w.add_argument("--quiet", "-q", action="store_true", help="no progress lines")

    v = sub.add_parser("validate", help="re-check bundles: hashes, re-run on golden inputs, tolerances")
    v.add_argument("bundles", nargs="+", metavar="BUNDLE")
    v.add_argument("--verify", metavar="PUBKEY", help="also require a valid signature by this public key file")
    v.add_argument("--device", action="append", metavar="NAME", help="also estimate latency on this device "
                   "(repeatable): a name from 'edgeport devices' or a device TOML file")
    v.add_argument("--json", action="store_true", help="print the report(s) as JSON")
    v.add_argument("--junit", metavar="FILE.xml", help="also write the checks as JUnit XML (for CI)")
    v.add_argument("--quiet", "-q", action="store_true", help="no progress lines")

    s = sub.add_parser("sign", help="sign a bundle's manifest (which covers every file) with a private key")
    s.add_argument("bundle", metavar="BUNDLE")
    s.add_argument("--key", required=True, metavar="PRIVATE_KEY",
                   help="Ed25519 private key file (PEM or OpenSSH); a passphrase comes from EDGEPORT_KEY_PASSWORD")

    k = sub.add_parser("keygen", help="make an Ed25519 key pair for signing bundles")
    k.add_argument("private_key", metavar="PRIVATE_KEY")
    k.add_argument("public_key", metavar="PUBLIC_KEY")

    r = sub.add_parser("run", help="run any .onnx / .tflite / .mlpackage / TF.js model.json on an npz")
    r.add_argument("artifact")
    r.add_argument("--data", required=True, help="FILE.npz of inputs (first axis = samples)")
    r.add_argument("-o", "--out", help="write outputs to this .npz (keys = output names)")
    r.add_argument("--runtime", help="runtime name (default: from the artifact's format)")
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                   help="give up on a run that takes longer (default: 600)")

    c = sub.add_parser("compare", help="run artifacts (any format, made anywhere) on the same inputs and "
                       "judge each against a reference")
    c.add_argument("artifacts", nargs="+", metavar="ARTIFACT",
                   help=".onnx | .tflite | .mlpackage | TF.js model.json or folder; the first is the reference "
                        "unless --reference is given")
    c.add_argument("--data", required=True, help="FILE.npz of inputs (first axis = samples)")
    c.add_argument("--reference", metavar="R", help="the reference: an artifact, or an npz of outputs keyed by "
                   "output name (a bundle's golden.npz: its reference__<output> arrays)")
    c.add_argument("--tolerance", default="fp32", metavar="PRECISION",
                   help="the tolerance row pairs are judged with: fp32 (default) | fp16 | bf16 | int8 | ...")
    c.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                   help="give up on an artifact's run that takes longer (default: 600)")
    c.add_argument("--json", action="store_true", help="print the comparison as JSON")
    c.add_argument("--junit", metavar="FILE.xml", help="also write one test case per pair and per output check")
    c.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    return p
