"""Shared pieces of the benchmarks: the machine line, what ran a suite, and bench/RESULTS.md assembled from the
suites."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUITES = (
    "indexing",
    "detection",
    "large_photos",
    "clustering",
    "spaces",
    "samples",
    "dense_sets",
    "assignment",
    "growth",
    "cut_rule",
    "link_precision",
    "small_sets",
    "third_models",
    "learned_metric",
    "left_alone",
    "copies",
    "training",
    "scale",
    "jobs",
)


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}, {platform.system()}"


def provenance() -> dict[str, str]:
    """What ran this suite: its command (`python bench/<script> <arguments>`), the machine and today's date."""
    return {
        "command": f"python bench/{Path(sys.argv[0]).name} " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
    }


def heading(title: str, results: dict) -> list[str]:
    """A suite's first lines: its title, and the command, machine and date it was run with."""
    return [
        f"## {title}",
        "",
        f"Command: `{results['command']}`. Machine: {results['machine']}. Date: {results['date']}.",
    ]


def assemble() -> Path:
    """bench/RESULTS.md = every suite's section from bench/results/<suite>.md (SUITES first, then the rest)."""
    parts = ["# facekit benchmark results", ""]
    others = sorted(p.stem for p in (HERE / "results").glob("*.md") if p.stem not in SUITES)
    for suite in (*SUITES, *others):
        section = HERE / "results" / f"{suite}.md"
        parts.append(section.read_text() if section.is_file() else f"## {suite}\n\nNot run yet.\n")
    out = HERE / "RESULTS.md"
    out.write_text("\n".join(parts))
    return out


def write_suite(suite: str, results: dict, markdown: str) -> Path:
    """Write bench/results/<suite>.json and .md, then re-assemble bench/RESULTS.md."""
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"{suite}.json").write_text(json.dumps(results, indent=1, default=str))
    (out / f"{suite}.md").write_text(markdown)
    return assemble()
