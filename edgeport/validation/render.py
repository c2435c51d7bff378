"""Terminal rendering of a report: the summary a person reads after an export."""
from __future__ import annotations

from typing import Any, Sequence

from .report import Report


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _f(x: Any, spec: str = ".4f") -> str:
    return "-" if x is None else format(x, spec)


def _task_line(o: dict[str, Any]) -> str:
    """One labelled output's task metrics: the artifact's figure, the source's, and the change."""
    ref, art = o["reference"], o["artifact"]
    head = f"{o['name']}: {o['kind']}"
    if o["kind"] == "regression":
        rel = o.get("mae_increase_rel")
        return (f"{head}  MAE {_f(art['mae'], '.4g')} (source {_f(ref['mae'], '.4g')}"
                + (f", {rel * 100:+.2f} % of label std" if rel is not None else "")
                + f")  RMSE {_f(art['rmse'], '.4g')}  {'ok' if o['passed'] else 'FAIL'}")
    drop = o.get("drop")
    line = (f"{head}  {o['metric']} {_f(art[o['metric']])} (source {_f(ref[o['metric']])}, "
            f"drop {'-' if drop is None else format(drop * 100, '+.2f')} pt)")
    if o["kind"] == "segmentation":
        line += f"  mIoU {_f(art['miou'])} (source {_f(ref['miou'])})"
    return line + f"  agreement {_f(o.get('agreement'))}  {'ok' if o['passed'] else 'FAIL'}"


def _estimate_line(e: dict[str, Any]) -> str:
    """One device estimate: where, the figure and its 80 % interval (or why there is none), the grade."""
    where = f"{e['device']} {e['runtime']} {e['precision']}" + (f" {e['threads']} thr" if e.get("threads") else "")
    if e.get("p50_ms") is None:
        return f"{where}: no estimate (grade D: {e['basis']})"
    spread = "" if e["low_ms"] == e["high_ms"] else f" [{_f(e['low_ms'], '.3g')}–{_f(e['high_ms'], '.3g')}]"
    return f"{where}: {_f(e['p50_ms'], '.3g')} ms{spread} grade {e['grade']}"


def render_report(report: Report, bundle: str | None = None) -> str:
    """The report as the lines a person reads (figures from its JSON form)."""
    r = report.to_dict()
    lines = []
    status = "PASS" if r["passed"] else "FAIL"
    lines.append(f"{status}  {r['model']} -> {r['target']} ({r['format']}, {r['precision']}"
                 + (f", sparsity {r['sparsity']:g}" if r["sparsity"] else "") + ")")
    s = r["size"]
    lines.append(f"  size      {_fmt_bytes(s.get('artifact_bytes'))} (fp32 {_fmt_bytes(s.get('fp32_bytes'))}, "
                 f"ratio {_f(s.get('ratio'), '.3f')}, gzip {_fmt_bytes(s.get('gzip_bytes'))})")
    p = r["parity"]
    agree = p.get("top1_agreement")
    lines.append(f"  parity    {p.get('samples')} samples in {r['runtime']}"
                 + (f", top-1 agreement {agree:.4f}" if agree is not None else ""))
    for o in p.get("outputs", []):
        lines.append(f"            {o['name']}: max_abs {_f(o['max_abs'], '.3g')}  cosine {_f(o['cosine'], '.6f')}  "
                     f"sqnr {_f(o['sqnr_db'], '.1f')} dB  {'ok' if o['passed'] else 'FAIL'}")
    if r["accuracy"]:
        a = r["accuracy"]
        per_output = [_task_line(o) for o in a.get("outputs") or []]
        if not per_output:  # a report from before per-output task metrics
            per_output = [f"{a['metric']} {_f(a['artifact'])} (source {_f(a['reference'])}, "
                          f"drop {a['drop'] * 100:+.2f} pt)"]
        lines += [("  accuracy  " if i == 0 else "            ") + line for i, line in enumerate(per_output)]
    lat = r["latency"]
    if lat:
        lines.append(f"  latency   p50 {_f(lat.get('p50_ms'), '.3f')} ms  p90 {_f(lat.get('p90_ms'), '.3f')} ms  "
                     f"({lat.get('provenance')}: {lat.get('where')}; load {_f(lat.get('load_ms'), '.0f')} ms)")
    for e in lat.get("estimates") or []:
        lines.append("  estimate  " + _estimate_line(e))
    for extra in r["runtimes"]:
        el = extra.get("latency") or {}
        ep = extra.get("parity") or {}
        ag = ep.get("top1_agreement")
        lines.append(f"  +runtime  {extra['runtime']}: p50 {_f(el.get('p50_ms'), '.3f')} ms"
                     + (f", agreement {ag:.4f}" if ag is not None else "")
                     + f", min cosine {_f(ep.get('cosine_min'), '.6f')}  ({el.get('provenance')})")
    ops = r["ops"]
    if ops.get("used"):
        uns = ops.get("unsupported") or []
        lines.append(f"  ops       {len(ops['used'])} kinds" + (f"; not taken by target: {', '.join(uns)}" if uns else ""))
    pf = r["precision_facts"]
    if pf:
        facts = ", ".join(f"{k}: {v}" for k, v in pf.items()
                          if k in ("weights", "activations", "compute", "note"))
        lines.append(f"  precision {facts}")
    auto = r.get("auto") or {}
    if auto:
        lines.append(f"  auto      picked {auto.get('pick')} ({auto.get('objective')}): {auto.get('why')}")
        for c in auto.get("candidates") or []:
            size = f"{c['bytes'] / 1024:.1f} KB" if c.get("bytes") else "-"
            p50 = next(iter((c.get("p50_ms") or {}).values()), None)
            mark = "fits" if c.get("passed") else "no: " + _clip(str(c.get("why") or ""))
            lines.append(f"            {c.get('label'):<28} {size:>10}  p50 {_f(p50, '.3f')} ms  {mark}")
        if auto.get("untried"):
            lines.append(f"            untried (search time): {', '.join(auto['untried'])}")
        for f in auto.get("held_out_failures") or []:
            lines.append(f"            {f['label']} fit the selection split but failed on the held-out one: "
                         f"{_clip(str(f['why']))}")
    comp = r.get("compression") or {}
    for i, step in enumerate(comp.get("steps") or []):
        lines.append(("  compress  " if i == 0 else "            ") + _step_line(step))
    for c in report.checks:
        lines.append(f"  [{'x' if c.passed else ' '}] {c.name}: {c.detail}")
    if not report.passed and pf.get("hint"):
        lines.append(f"  hint      {pf['hint']}")
    if bundle:
        lines.append(f"  bundle    {bundle}")
    return "\n".join(lines)


def render_summary(rows: Sequence[tuple[str, Report | None, str | None, str | None]], seconds: float) -> str:
    """One line per target — ``(target, report, bundle, error)`` — and the total time."""
    table = [("TARGET", "PRECISION", "RESULT", "RATIO", "PARITY", "P50 MS", "BUNDLE / ERROR")]
    for target, report, bundle, error in rows:
        if report is None:
            table.append((target, "-", "ERROR", "-", "-", "-", error or ""))
            continue
        d = report.to_dict()
        par = d["parity"]
        agree = par.get("top1_agreement")
        head = (f"agree {agree:.4f}" if agree is not None else
                f"cos {par['cosine_min']:.5f}" if par.get("cosine_min") is not None else "-")
        table.append((target, d["precision"], "PASS" if report.passed else "FAIL", _f(d["size"].get("ratio"), ".3f"),
                      head, _f(d["latency"].get("p50_ms"), ".3f"), bundle or ""))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in table]
    ok = sum(1 for _, rep, _, _ in rows if rep is not None and rep.passed)
    lines.append(f"{ok}/{len(rows)} targets passed in {seconds:.1f} s")
    return "\n".join(lines)


def _step_line(step: dict) -> str:
    """One compression step in a few figures."""
    kind = step.get("kind")
    if kind == "distill":
        before, after = step.get("before") or {}, step.get("after") or {}
        metric = next((k for k in after if k.startswith("accuracy:")), None) or \
            next((k for k in after if k.startswith("agreement:")), "loss")
        return (f"distill ({step.get('method')}): {step.get('epochs_run')} epochs, {_f(step.get('seconds'), '.1f')} s "
                f"of {_f(step.get('time_budget_s'), '.0f')}, {step.get('train_samples')} train samples, "
                f"{step.get('stopped')}; {metric} {_f(before.get(metric), '.4f')} -> {_f(after.get(metric), '.4f')} "
                f"({step.get('validated_on')})")
    if kind == "magnitude":
        achieved = step.get("achieved")
        return (f"magnitude {step.get('schedule', 'one-shot')} {step.get('scope')}: sparsity {step.get('sparsity')}"
                + (f" (achieved {_f(achieved, '.3f')})" if achieved else ""))
    parts = [f"{kind}"]
    for key in ("ratio", "energy", "rank_ratio"):
        if step.get(key) is not None:
            parts.append(f"{key} {step[key]}")
    for before, after, label in (("params_before", "params_after", "params"), ("macs_before", "macs_after", "MACs")):
        if step.get(before):
            parts.append(f"{label} {step[before]:,} -> {step[after]:,} ({step[after] / step[before]:.2f}x)")
    return ", ".join(parts)


def _clip(text: str, width: int = 90) -> str:
    """``text`` cut to ``width`` characters at a word, marked with an ellipsis when cut (report.json
    and report.html keep the whole text)."""
    if len(text) <= width:
        return text
    head = text[:width - 1]
    return (head.rsplit(" ", 1)[0] if " " in head else head).rstrip(" ;,(") + " …"
