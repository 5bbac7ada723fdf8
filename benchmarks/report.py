"""Summaries (medians, ratios, goals) and the printed table of a benchmark run."""

from __future__ import annotations

import datetime
import os
import platform
import sqlite3
import statistics
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["GOALS", "machine", "render", "summarise"]


def machine(root: Path) -> dict[str, Any]:
    """What the figures were measured on."""
    info: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load_before": os.getloadavg(),
        "revision": _git(root, "describe", "--always", "--dirty"),
    }
    try:
        import psycopg
        from floor import pg_dsn
        from harness import pg_url

        with psycopg.connect(pg_dsn(pg_url()), connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            info["postgresql"] = row[0] if row else None
    except Exception:
        info["postgresql"] = None
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _per(count: int | None, total: int) -> float | None:
    return None if count is None or not total else count / total


def summarise(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """Medians and per-event counts of one case on one revision (the raw rounds kept)."""
    rounds: list[dict[str, Any]] = data["rounds"]
    out: dict[str, Any] = {"rounds": rounds, "counts": data["counts"], "errors": data["errors"]}
    if name == "import":
        out["import_ms"] = _spread([r["seconds"] * 1000 for r in rounds])
    elif name.startswith("workers-"):
        one = [r["one"]["per_second"] for r in rounds]
        two = [r["two"]["per_second"] for r in rounds]
        out["one_worker"] = _spread(one)
        out["two_workers"] = _spread(two)
        out["two_over_one"] = _spread([b / a for a, b in zip(one, two, strict=True)])
    elif rounds:
        out["per_second"] = _spread([r["events"] / r["seconds"] for r in rounds])
        out["cpu_us_per_event"] = _spread([r["cpu_seconds"] / r["events"] * 1e6 for r in rounds])
        if "queue_calls" in rounds[0]:
            out["queue_calls_per_message"] = rounds[0]["queue_calls"] / rounds[0]["messages"]
    counts = data["counts"]
    if counts and "parts" in counts:
        out["parts"] = {
            label: {
                "statements_per_event": _per(part["statements"], part["events"]),
                "round_trips_per_event": _per(part["round_trips"], part["events"]),
                "round_trips_per_batch": _per(part["round_trips"], part["batches"]),
                **part,
            }
            for label, part in counts["parts"].items()
        }
    elif counts:
        out["statements_per_event"] = _per(counts.get("statements"), counts["events"])
        out["round_trips_per_event"] = _per(counts.get("round_trips"), counts["events"])
        out["statements_per_batch"] = _per(counts.get("statements"), counts.get("batches") or 0)
    return out


def add_floor_ratios(result: dict[str, Any]) -> None:
    """Each SQL case's median events/s over its store's row-at-a-time floor (same revision)."""
    cases = result["cases"]
    for name, per in cases.items():
        store = name.rsplit("-", 1)[-1]
        floor = cases.get(f"floor-{store}")
        if name.startswith("floor") or floor is None:
            continue
        for label, summary in per.items():
            mine, base = summary.get("per_second"), floor.get(label, {}).get("per_second")
            if mine and base:
                summary["floor_ratio"] = mine["median"] / base["median"]


def _rt_worst(s: dict[str, Any]) -> float | None:
    parts = s.get("parts") or {}
    values = [p["round_trips_per_event"] for k, p in parts.items() if k.startswith("sms")]
    return max(values) if values else None


def _ev(s: dict[str, Any]) -> float:
    return float(s["per_second"]["median"]) if s.get("per_second") else 0.0


#: Case -> (goal as printed, test of one summary).
GOALS: dict[str, tuple[str, Callable[[dict[str, Any]], bool]]] = {
    "import": ("<= 50 ms", lambda s: bool(s.get("import_ms")) and s["import_ms"]["median"] <= 50),
    "null-memory": (
        "<= 10 us/msg CPU",
        lambda s: bool(s.get("cpu_us_per_event")) and s["cpu_us_per_event"]["median"] <= 10,
    ),
    "sms-memory": (">= 20,000 ev/s", lambda s: _ev(s) >= 20_000),
    "sms-sqlite": (">= 5,000 ev/s", lambda s: _ev(s) >= 5_000),
    "sms-postgres": (
        ">= 2,500 ev/s, >= 0.3 x floor",
        lambda s: _ev(s) >= 2_500 and s.get("floor_ratio", 0) >= 0.3,
    ),
    "email-postgres": (">= 2,500 ev/s", lambda s: _ev(s) >= 2_500),
    "roundtrips-postgres": (
        "<= 1.5 RT per inbound SMS",
        lambda s: (_rt_worst(s) or 99) <= 1.5,
    ),
}


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _range(spread: dict[str, float] | None, digits: int = 0, unit: str = "") -> str:
    if not spread:
        return "-"
    return (
        f"{_fmt(spread['median'], digits)}{unit} "
        f"({_fmt(spread['min'], digits)}-{_fmt(spread['max'], digits)})"
    )


def _row(name: str, label: str, s: dict[str, Any]) -> list[str]:
    if s["errors"] and not s["rounds"] and not s["counts"]:
        return [name, label, "ERROR: " + s["errors"][0][:70], "", "", "", "", "", ""]
    figure = "-"
    if s.get("import_ms"):
        figure = _range(s["import_ms"], 0, " ms")
    elif s.get("two_over_one"):
        figure = (
            f"1: {_fmt(s['one_worker']['median'])}, 2: {_fmt(s['two_workers']['median'])} "
            f"(x{s['two_over_one']['median']:.2f})"
        )
    elif s.get("per_second"):
        figure = _range(s["per_second"])
    rt = _fmt(s.get("round_trips_per_event"), 2)
    stmts = _fmt(s.get("statements_per_event"), 2)
    cpu = _fmt(s["cpu_us_per_event"]["median"]) if s.get("cpu_us_per_event") else "-"
    ratio = _fmt(s.get("floor_ratio"), 2)
    goal, test = GOALS.get(name, ("", None))
    met = ("yes" if test(s) else "no") if test is not None else ""
    if s["errors"]:
        met += " (errors)"
    return [name, label, figure, stmts, rt, ratio, cpu, goal, met]


def _part_rows(name: str, label: str, s: dict[str, Any]) -> list[list[str]]:
    """One row per part of a counting case: statements and round trips per event and per batch."""
    return [
        [
            f"  {part}",
            label,
            f"{_fmt(p['round_trips_per_batch'], 1)} RT per batch of 10",
            _fmt(p["statements_per_event"], 2),
            _fmt(p["round_trips_per_event"], 2),
            "",
            "",
            "",
            "",
        ]
        for part, p in (s.get("parts") or {}).items()
    ]


def render(result: dict[str, Any]) -> str:
    """The machine, then one line per case and revision (and after/before ratios)."""
    add_floor_ratios(result)
    info = result["machine"]
    load = ", ".join(f"{x:.2f}" for x in info["load_before"])
    load_after = ", ".join(f"{x:.2f}" for x in info.get("load_after", ()))
    lines = [
        f"{info['date']}  {info['cpus']} x {info['cpu_model']}  Python {info['python']}  "
        f"SQLite {info['sqlite']}  PostgreSQL {info.get('postgresql') or '-'}",
        f"revision {info['revision']}; load average before {load}, after {load_after}; "
        f"{result['rounds']} round(s){' (quick)' if result['quick'] else ''}",
        "",
    ]
    header = [
        "case",
        "rev",
        "events/s median (min-max)",
        "stmt/ev",
        "RT/ev",
        "x floor",
        "CPU us/ev",
        "goal",
        "met",
    ]
    rows = [header]
    labels = result["revisions"]
    for name, per in result["cases"].items():
        for label in labels:
            if label in per:
                rows.append(_row(name, label, per[label]))
                rows.extend(_part_rows(name, label, per[label]))
        if len(labels) == 2 and all(per.get(x, {}).get("per_second") for x in labels):
            before, after = (per[x]["per_second"]["median"] for x in labels)
            rows.append([name, "after/before", f"x{after / before:.2f}", "", "", "", "", "", ""])
    if len(labels) == 1:
        rows = [[c for i, c in enumerate(r) if i != 1] for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    for name, why in result["skipped"].items():
        lines.append(f"skipped {name}: {why}")
    return "\n".join(lines)
