"""What a rig run found, in three shapes: a readable report, JUnit XML for CI, JSON for tools.

Each scenario is one JUnit test case; a failed expectation is its failure, with what was
expected and what happened instead (the nearest events of the journal).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

Outcome = Literal["passed", "failed", "error", "skipped"]


@dataclass
class StepResult:
    """One step as played: a stimulus (done or not) or an expectation (met or not, and when)."""

    index: int
    line: int
    step: str  # the step as the scenario says it, in one line
    expectation: bool
    passed: bool
    measured_ms: float | None = None
    detail: str = ""  # what was done, or what was measured
    expected: str = ""  # for a failure: what the scenario asked for
    nearest: list[str] = field(default_factory=list)  # for a failure: what happened instead


@dataclass
class ScenarioResult:
    path: str
    name: str
    outcome: Outcome = "passed"
    duration_s: float = 0.0
    steps: list[StepResult] = field(default_factory=list)
    error: str = ""  # a scenario that could not be played: its problems
    workdir: str | None = None  # kept with --keep

    @property
    def failures(self) -> list[StepResult]:
        return [s for s in self.steps if not s.passed]


def text(results: list[ScenarioResult]) -> str:
    """The report a rig engineer reads: each expectation with pass or fail and its measured time."""
    lines: list[str] = []
    for result in results:
        lines.append(f"{result.outcome.upper():7} {result.name}  ({result.path}, {result.duration_s:.1f} s)")
        for step in result.steps:
            mark = ("pass" if step.passed else "FAIL") if step.expectation else ("  ok" if step.passed else "FAIL")
            took = f"{step.measured_ms:8.0f} ms" if step.measured_ms is not None else " " * 11
            lines.append(f"  {mark} {took}  line {step.line:<4} {step.step}" + (f"  [{step.detail}]" if step.detail and step.passed else ""))
            if not step.passed:
                lines.append(f"        expected: {step.expected or step.step}")
                lines.append(f"        instead:  {step.detail}")
                if step.nearest:
                    lines.append("        nearest events (seq, ms after the stimulus, kind, source, body):")
                    lines.extend(f"          {event}" for event in step.nearest)
        if result.error:
            lines.extend(f"        {line}" for line in result.error.splitlines())
        if result.workdir:
            lines.append(f"        state kept in {result.workdir}")
    passed = sum(r.outcome == "passed" for r in results)
    skipped = sum(r.outcome == "skipped" for r in results)
    lines.append(f"{passed} of {len(results)} scenario(s) passed" + (f", {skipped} skipped (their data is not here)" if skipped else ""))
    return "\n".join(lines)


def failure_text(result: ScenarioResult) -> str:
    return text([result])


def junit(results: list[ScenarioResult], path: Path) -> None:
    suite = ET.Element("testsuite", name="hil", tests=str(len(results)),
                       failures=str(sum(r.outcome == "failed" for r in results)),
                       errors=str(sum(r.outcome == "error" for r in results)),
                       skipped=str(sum(r.outcome == "skipped" for r in results)),
                       time=f"{sum(r.duration_s for r in results):.3f}")
    for result in results:
        case = ET.SubElement(suite, "testcase", classname=f"edge.hil.scenarios.{Path(result.path).stem}", name=result.name,
                             file=result.path, time=f"{result.duration_s:.3f}")
        if result.outcome == "failed":
            first = result.failures[0]
            ET.SubElement(case, "failure", message=f"line {first.line}: {first.step}: {first.detail}").text = failure_text(result)
        elif result.outcome == "error":
            ET.SubElement(case, "error", message=result.error.splitlines()[0] if result.error else "error").text = failure_text(result)
        elif result.outcome == "skipped":
            ET.SubElement(case, "skipped", message=result.error)
        ET.SubElement(case, "system-out").text = failure_text(result)
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def as_json(results: list[ScenarioResult], path: Path) -> None:
    path.write_text(json.dumps({"scenarios": [asdict(r) for r in results],
                                "passed": all(r.outcome == "passed" for r in results)}, indent=2) + "\n")
