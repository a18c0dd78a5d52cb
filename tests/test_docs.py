"""The docs in the repository (issue 18, item 5): the README is the quick start and links each
reference doc in docs/; every relative link in README.md and docs/*.md resolves to a file inside the
repository (and its anchor to a heading of that file, by GitHub's slug rules); nothing a user reads
points outside the repository; and every metric the README and docs/metrics.md name is served by
a running daemon."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import REPO
from metrics_kit_rig import running_building
from status_rig import fetch, until

README = REPO / "README.md"
DOCS = REPO / "docs"
REFERENCE = ("architecture.md", "profiles.md", "rig.md", "community.md", "uplink.md", "metrics.md", "benchmarks.md",
             "camera.md", "fleet.md")


def documents() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _name(path: Path) -> str:
    return str(path.relative_to(REPO))


# --- reading Markdown as GitHub does -------------------------------------------------------

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^()\s<>]*(?:\([^()\s]*\)[^()\s<>]*)*)>?(?:\s+[\"'(][^)]*)?\)")
_REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.M)
_HTML_LINK = re.compile(r"<(?:a|img)\b[^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']+)[\"']", re.I)
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")


def prose(text: str) -> str:
    """The text outside fenced code blocks (a `# comment` in a YAML block is not a heading, a
    `[x](y)` in a shell block is not a link); each fenced line is kept as an empty line."""
    lines, fence = [], None
    for line in text.split("\n"):
        opened = _FENCE.match(line)
        if fence is None and opened:
            fence = opened.group(1)[0] * len(opened.group(1))
            lines.append("")
        elif fence is not None:
            if line.strip().startswith(fence) and set(line.strip()) <= {fence[0]}:
                fence = None
            lines.append("")
        else:
            lines.append(line)
    return "\n".join(lines)


def links(text: str) -> list[str]:
    """Every link target of a Markdown file: inline links and images, reference definitions, HTML
    href/src; code (fenced blocks and `spans`) holds none."""
    text = _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), prose(text))
    found = [m.group(1) for m in _INLINE_LINK.finditer(text)]
    found += [m.group(1) for m in _REFERENCE_DEFINITION.finditer(text)]
    found += [m.group(1) for m in _HTML_LINK.finditer(text)]
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: the rendered text (links as their text, no code or
    emphasis marks), lower case, every character but letters, digits, '_', '-' and ' ' dropped,
    each space a hyphen."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text)
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"(?<!\w)_+|_+(?!\w)", "", text)  # _emphasis_ marks, not snake_case
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of a file's headings; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    result = set()
    for line in prose(text).split("\n"):
        heading = _HEADING.match(line)
        if not heading:
            continue
        base = slug(heading.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def test_slugs_follow_github():
    assert slug("Running under systemd") == "running-under-systemd"
    assert slug("Uplink: topics and message formats (wire version 1)") == "uplink-topics-and-message-formats-wire-version-1"
    assert slug("Alert rules: `contrib/prometheus/edge-rules.yml`") == "alert-rules-contribprometheusedge-rulesyml"
    assert slug("Community safety: smoke, intrusion, panic, who is told") == "community-safety-smoke-intrusion-panic-who-is-told"
    assert slug("Cameras, the process") == "cameras-the-process"
    assert slug("`edge_point_value` and [the page](x.md)") == "edge_point_value-and-the-page"
    assert anchors("# A\n## A\n```sh\n# A\n```\n## A b\n") == {"a", "a-1", "a-b"}


def test_links_are_read_from_prose_not_from_code():
    text = "See [a](docs/a.md#x) and ![pic](docs/p.png).\n```sh\necho '[b](nowhere.md)'\n```\n`[c](nowhere.md)` [d]: docs/d.md\n[e]: docs/e.md\n"
    assert links(text) == ["docs/a.md#x", "docs/p.png", "docs/e.md"]


# --- the links -----------------------------------------------------------------------------


def _external(target: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) is not None and not target.lower().startswith("file:")


def test_every_relative_link_resolves_to_a_file_inside_the_repository():
    problems = []
    repo = REPO.resolve()
    for doc in documents():
        for target in links(doc.read_text(encoding="utf-8")):
            if _external(target):
                continue
            where = f"{_name(doc)}: ({target})"
            if target.lower().startswith("file:") or target.startswith(("/", "~", "\\")) or re.match(r"^[A-Za-z]:[\\/]", target):
                problems.append(f"{where} is an absolute path")
                continue
            path_part, _, anchor = target.partition("#")
            path_part = unquote(path_part.split("?")[0])
            resolved = (doc.parent / path_part).resolve() if path_part else doc.resolve()
            if not resolved.is_relative_to(repo):
                problems.append(f"{where} points outside the repository")
            elif not resolved.exists():
                problems.append(f"{where}: no such file")
            elif anchor:
                if not resolved.is_file() or resolved.suffix != ".md":
                    problems.append(f"{where}: an anchor into something that is not a Markdown file")
                elif anchor not in anchors(resolved.read_text(encoding="utf-8")):
                    problems.append(f"{where}: {resolved.name} has no heading whose anchor is #{anchor}")
    assert problems == []


def test_nothing_a_user_reads_points_outside_the_repository():
    """No `../shared` (the tests' data folder beside the checkout), and no absolute path of the
    machine the docs were written on (a gateway's own paths, /etc/edge or /var/lib/edge, are fine)."""
    outside = [re.escape(str(REPO.resolve().parent)) + r"(?:/|\b)", r"\.\./shared\b", r"(?<![\w.])/(?:home|Users|root)/", r"\bfile:/"]
    problems = []
    for doc in documents():
        for number, line in enumerate(doc.read_text(encoding="utf-8").split("\n"), 1):
            for pattern in outside:
                if re.search(pattern, line):
                    problems.append(f"{_name(doc)}:{number}: {line.strip()}")
    assert problems == []


def test_the_readme_starts_with_the_two_commands_and_links_every_reference_doc():
    text = README.read_text(encoding="utf-8")
    lines = text.split("\n")
    assert lines[0] == "# building-edge" and lines[2] == "```sh"
    assert lines[3].startswith("./dev demo ") and lines[4].startswith("./dev test ")
    targets = {unquote(t.partition("#")[0]) for t in links(text)}
    assert "docs/status-page.png" in targets, "the screenshot"
    assert {f"docs/{name}" for name in REFERENCE} <= targets
    assert {f"docs/{doc.name}" for doc in DOCS.glob("*.md")} <= targets, "a doc the README does not link"
    for heading in ("configuring-a-building", "running-under-systemd", "running-in-the-field"):
        assert heading in anchors(text)


# --- the metrics ---------------------------------------------------------------------------

_METRIC = re.compile(r"`(edge_[a-z0-9_]+)[^`]*`")

# Declared but without a sample in a building where nothing has happened yet: each needs an event
# (as test_metrics_kit says; test_status_server and test_status_cameras show them served).
ONLY_AFTER_AN_EVENT = {
    "edge_access_decisions_total": "a sample per decision reason once a card is decided at a door",
    "edge_camera_inference_seconds": "observed once the camera's model has run on a frame",
    "edge_camera_last_frame_age_seconds": "a sample once the camera has delivered a frame (this building's stream never opens)",
}


def listed_metrics() -> dict[str, set[str]]:
    """Metric name -> the docs that name it, from the code spans of the README and docs/metrics.md."""
    names: dict[str, set[str]] = {}
    for doc in (README, DOCS / "metrics.md"):
        for name in _METRIC.findall(doc.read_text(encoding="utf-8")):
            names.setdefault(name, set()).add(_name(doc))
    return names


def test_the_metrics_doc_lists_metrics():
    assert {"edge_point_value", "edge_circuit_cut", "edge_camera_stream_up", "edge_journal_degraded"} <= set(listed_metrics())


def _served(text: str) -> tuple[set[str], set[str]]:
    """(names as the docs spell them with at least one sample, names of every declared family).
    A counter is spelled with its `_total`, a histogram by its family name."""
    with_samples, declared = set(), set()
    for family in text_string_to_metric_families(text):
        name = family.name + "_total" if family.type == "counter" else family.name
        declared.add(name)
        if family.samples:
            with_samples.add(name)
    return with_samples, declared


@pytest.mark.timeout(240)
def test_every_metric_the_docs_list_is_served_by_a_running_daemon(write_config, building_dir):
    """`edge run` on the metrics kit's building (a pymodbus monitor, breaker and water inputs, a card
    reader, a camera, an uplink to mosquitto), scraped once every part has reported."""

    async def scrape() -> str:
        async with running_building(write_config, building_dir) as daemon:
            async def everything_reported():
                _, text = await fetch(daemon.url, "/metrics")
                with_samples, _ = _served(text)
                return text if {"edge_point_value", "edge_journal_unsynced_events", "edge_circuit_cut",
                                "edge_device_last_success_age_seconds", "edge_camera_car_held"} <= with_samples else None

            return await until(everything_reported, 30, "every part of the building on /metrics")

    with_samples, declared = _served(asyncio.run(scrape()))
    listed = listed_metrics()
    not_served = {name: docs for name, docs in listed.items() if name not in declared}
    assert not_served == {}, "listed but not served"
    without_samples = {name for name in listed if name not in with_samples}
    assert without_samples <= set(ONLY_AFTER_AN_EVENT), f"listed, declared, but no sample: {without_samples - set(ONLY_AFTER_AN_EVENT)}"
