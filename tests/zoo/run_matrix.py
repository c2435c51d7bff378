"""Run the layer-zoo matrix and print its markdown table (the one in the README).

    python tests/zoo/run_matrix.py [--models a,b] [--targets t1,t2] [--precisions fp32,fp16,int8]
                                   [--out tests/zoo/matrix.json] [--table-only]

Cells run in this one process through ``edgeport.export`` (see ``matrix.py``), model by model so
each model's conversions are cached once. Results are merged into ``--out`` as they come (cells
already there are kept unless re-run), so an interrupted run keeps what it measured.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from matrix import PRECISIONS, TARGETS, run_cell, table  # noqa: E402


def main() -> int:
    import models as zoo

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(zoo.ZOO))
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--precisions", default=",".join(PRECISIONS))
    ap.add_argument("--out", default=str(HERE / "matrix.json"))
    ap.add_argument("--table-only", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    doc = json.loads(out.read_text()) if out.exists() else {"cells": []}
    cells = {(c["model"], c["target"], c["precision"]): c for c in doc["cells"]}
    t_all = time.perf_counter()
    if not args.table_only:
        with tempfile.TemporaryDirectory(prefix="edgeport-zoo-") as root:
            for model in args.models.split(","):
                cache = Path(root) / model / "cache"
                for prec in args.precisions.split(","):
                    for target in args.targets.split(","):
                        print(f"[zoo] {model} {target} {prec} ...", file=sys.stderr, flush=True)
                        c = run_cell(model, target, prec, Path(root) / model, cache).to_dict()
                        print(f"[zoo]   -> {c['outcome']} {c['seconds']} s {c['error'] or ', '.join(c['failing'])}",
                              file=sys.stderr, flush=True)
                        cells[(model, target, prec)] = c
                        doc["cells"] = list(cells.values())
                        out.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"[zoo] {time.perf_counter() - t_all:.0f} s in all", file=sys.stderr)
    models = [m for m in zoo.ZOO if any(k[0] == m for k in cells)]
    print(table(list(cells.values()), models))
    return 0


if __name__ == "__main__":
    sys.exit(main())
