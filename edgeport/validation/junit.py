"""JUnit XML from reports: one test suite per bundle, one test case per check, so a CI system
shows which check of which target failed without reading report.json."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

from .report import Report


def write_junit(path: str | Path, reports: Sequence[tuple[str, Report]],
                errors: Sequence[tuple[str, str]] = ()) -> Path:
    """Write ``reports`` (pairs of bundle path and report) as JUnit XML at ``path``; ``errors``
    (pairs of a name and why it produced nothing) become suites with one errored case."""
    root = ET.Element("testsuites", name="edgeport")
    total = failures = errored = 0
    for name, why in errors:
        suite = ET.SubElement(root, "testsuite", name=name, tests="1", failures="0", errors="1")
        case = ET.SubElement(suite, "testcase", classname=name, name="export")
        ET.SubElement(case, "error", message=why[:500]).text = why
        total += 1
        errored += 1
    for bundle, rep in reports:
        failed = len(rep.failed_checks)
        suite = ET.SubElement(root, "testsuite", name=f"{rep.model}-{rep.target}",
                              tests=str(len(rep.checks)), failures=str(failed))
        props = ET.SubElement(suite, "properties")
        for key, value in (("bundle", bundle), ("format", rep.format), ("runtime", rep.runtime),
                           ("precision", rep.precision), ("sparsity", rep.sparsity)):
            ET.SubElement(props, "property", name=key, value=str(value))
        for check in rep.checks:
            case = ET.SubElement(suite, "testcase", classname=f"{rep.model}.{rep.target}", name=check.name)
            if check.passed:
                ET.SubElement(case, "system-out").text = check.detail
            else:
                ET.SubElement(case, "failure", message=check.detail[:500]).text = check.detail
        total += len(rep.checks)
        failures += failed
    root.set("tests", str(total))
    root.set("failures", str(failures))
    root.set("errors", str(errored))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(out, encoding="utf-8", xml_declaration=True)
    return out
