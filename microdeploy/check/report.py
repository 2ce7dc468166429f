"""The outcome of each check, and the whole report as text, JSON and JUnit XML (Jenkins' `junit` step)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from microdeploy.errors import EXIT_FAILURE

__all__ = ["FAILED", "PASSED", "SKIPPED", "Outcome", "Report"]

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"

# XML 1.0 has no way to carry these; a tool's output may contain them.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class Outcome:
    """One check: its name, whether it passed, one line that says why, and the output behind it."""

    name: str
    status: str
    summary: str
    seconds: float = 0.0
    details: str = ""

    @property
    def passed(self) -> bool:
        """Whether the check passed."""
        return self.status == PASSED

    def line(self) -> str:
        """`PASS name: summary (1.2 s)`, the one line a person reads."""
        label = {PASSED: "PASS", FAILED: "FAIL", SKIPPED: "SKIP"}[self.status]
        timing = f" ({self.seconds:.1f} s)" if self.status != SKIPPED else ""
        return f"{label} {self.name}: {self.summary}{timing}"

    def as_dict(self) -> dict[str, Any]:
        """The outcome as JSON-ready data."""
        return {"name": self.name, "status": self.status, "summary": self.summary,
                "seconds": round(self.seconds, 3), "details": self.details}


@dataclass
class Report:
    """Every outcome of one `check` run of one package."""

    package: str
    version: str
    release: str
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failures(self) -> list[Outcome]:
        """The checks that failed."""
        return [outcome for outcome in self.outcomes if outcome.status == FAILED]

    @property
    def exit_code(self) -> int:
        """0 when nothing failed, else 1."""
        return EXIT_FAILURE if self.failures else 0

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "package": self.package,
            "version": self.version,
            "release": self.release,
            "passed": not self.failures,
            "seconds": round(self.seconds, 3),
            "checks": [outcome.as_dict() for outcome in self.outcomes],
        }

    def junit_xml(self) -> str:
        """A JUnit XML report: one testsuite, one testcase per check, a failure's output inside it."""
        suite = ET.Element("testsuite", {
            "name": f"microdeploy check {self.package}",
            "tests": str(len(self.outcomes)),
            "failures": str(len(self.failures)),
            "errors": "0",
            "skipped": str(sum(outcome.status == SKIPPED for outcome in self.outcomes)),
            "time": f"{self.seconds:.3f}",
        })
        properties = ET.SubElement(suite, "properties")
        for key, value in (("package", self.package), ("version", self.version), ("release", self.release)):
            ET.SubElement(properties, "property", {"name": key, "value": _xml_text(value)})
        # Jenkins groups test cases by class name: package and release, dots as separators.
        classname = f"{self.package}.{self.release}".replace(".", "_").replace("-", "_")
        for outcome in self.outcomes:
            case = ET.SubElement(suite, "testcase", {
                "classname": f"microdeploy_check.{classname}",
                "name": outcome.name,
                "time": f"{outcome.seconds:.3f}",
            })
            if outcome.status == FAILED:
                failure = ET.SubElement(case, "failure", {"message": _xml_text(outcome.summary),
                                                          "type": "CheckFailed"})
                failure.text = _xml_text(f"{outcome.summary}\n\n{outcome.details}".rstrip() + "\n")
            elif outcome.status == SKIPPED:
                ET.SubElement(case, "skipped", {"message": _xml_text(outcome.summary)})
            elif outcome.details:
                ET.SubElement(case, "system-out").text = _xml_text(outcome.details)
        root = ET.Element("testsuites")
        root.append(suite)
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _xml_text(text: str) -> str:
    """`text` without the characters XML 1.0 cannot carry."""
    return _XML_INVALID.sub("?", text)
