"""commproc's benchmark: the real processors on memory, SQLite and PostgreSQL, against the storage floor.

    python benchmarks/pipeline.py                      # the default set, 5 rounds (nox -s bench)
    python benchmarks/pipeline.py --quick              # one short round of everything: a smoke test
    python benchmarks/pipeline.py --cases 'sms-*,floor-sqlite' --rounds 9
    python benchmarks/pipeline.py --compare main       # the working tree against main, in one run
    python benchmarks/pipeline.py --profile sms-sqlite # one round under cProfile

Cases run interleaved in rounds (A B C ... then A B C again) so that a
noisy neighbour spreads over every case instead of spoiling one; each
figure is the median of the rounds, with their minimum and maximum. Every
case runs in a worker process whose ``PYTHONPATH`` is the ``src`` of the
tree being measured (with ``--compare REV``, a second worker measures a
temporary git worktree of REV, and the two alternate round by round).
Statements and round trips come from a separate untimed pass of each case
(see counting.py); the timed rounds carry no instrumentation.

A case stops with an error if its run lost, failed, retried or duplicated
anything: a fast wrong answer is not a figure. docs/performance.md has the
cases, the workloads, the goals and the figures.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from cases import CASES, Case
from report import machine, render, summarise

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
MARK = "@@result "
DEFAULT_ROUNDS = 5


# -- the worker side ------------------------------------------------------------------------


def serve() -> int:
    """Answer requests (one JSON object a line on stdin) until stdin closes."""
    import logging

    from cases import run_request

    # The pipeline logs every batch at INFO; a benchmark wants only problems.
    logging.basicConfig(level=logging.WARNING)
    by_name = {case.name: case for case in CASES}
    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints must not garble the protocol
    for line in sys.stdin:
        request = json.loads(line)
        answer: dict[str, Any]
        try:
            case = by_name[request["case"]]
            answer = {"ok": run_request(case, request["mode"], request["quick"], events=request["events"])}
        except Exception as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        out.write(MARK + json.dumps(answer) + "\n")
        out.flush()
    return 0


class Worker:
    """A ``--serve`` subprocess measuring the commproc in ``src``."""

    def __init__(self, label: str, src: Path) -> None:
        self.label = label
        self.src = src
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), str(HERE)]), "PYTHONHASHSEED": "0"}
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "pipeline.py"), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=str(HERE),
        )

    def ask(self, case: Case, mode: str, args: argparse.Namespace) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        events = args.events if case.kind != "import" else None
        request = {"case": case.name, "mode": mode, "quick": args.quick, "events": events}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        for line in self.process.stdout:
            if line.startswith(MARK):
                answer: dict[str, Any] = json.loads(line[len(MARK) :])
                return answer
        return {"error": f"worker for {self.label} exited with {self.process.wait()}"}

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


# -- the orchestrator -----------------------------------------------------------------------


def select(patterns: str | None) -> list[Case]:
    if not patterns:
        return list(CASES)
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    chosen = [c for c in CASES if any(fnmatch.fnmatchcase(c.name, p) for p in wanted)]
    unknown = [p for p in wanted if not any(fnmatch.fnmatchcase(c.name, p) for c in CASES)]
    if unknown:
        raise SystemExit(f"no case matches {', '.join(unknown)}; cases: {', '.join(c.name for c in CASES)}")
    return chosen


def postgres_problem() -> str | None:
    """Why PostgreSQL cannot be used, or None."""
    from harness import pg_url

    try:
        import psycopg
        from floor import pg_dsn

        psycopg.connect(pg_dsn(pg_url()), connect_timeout=3).close()
    except Exception as exc:
        return f"PostgreSQL not reachable ({type(exc).__name__}); set COMMPROC_BENCH_POSTGRES_URL"
    return None


def worktree(stack: ExitStack, rev: str) -> Path:
    """A temporary detached git worktree of ``rev``, removed when ``stack`` closes."""
    tmp = Path(tempfile.mkdtemp(prefix="commproc-bench-"))
    path = tmp / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev], check=True)

    def remove() -> None:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False)
        subprocess.run(["rm", "-rf", str(tmp)], check=False)

    stack.callback(remove)
    return path


def run(args: argparse.Namespace) -> dict[str, Any]:
    cases = select(args.cases)
    skipped: dict[str, str] = {}
    if any(c.needs_postgres for c in cases):
        problem = postgres_problem()
        if problem:
            skipped = {c.name: problem for c in cases if c.needs_postgres}
            cases = [c for c in cases if not c.needs_postgres]
    rounds = 1 if args.quick and args.rounds is None else (args.rounds or DEFAULT_ROUNDS)
    results: dict[str, dict[str, Any]] = {c.name: {} for c in cases}
    info = machine(ROOT)
    with ExitStack() as stack:
        workers = []
        if args.compare:
            workers.append(Worker(f"{args.compare}", worktree(stack, args.compare) / "src"))
        workers.append(Worker("current", ROOT / "src"))
        for worker in workers:
            stack.callback(worker.close)
        for case in cases:
            for worker in workers:
                results[case.name][worker.label] = {"rounds": [], "counts": None, "errors": []}
        for case in cases:
            if not case.counted:
                continue
            for worker in workers:
                answer = worker.ask(case, "count", args)
                _store(results[case.name][worker.label], "counts", answer)
                _progress(args, f"counted {case.name} [{worker.label}]", answer)
        for number in range(rounds):
            order = workers if number % 2 == 0 else workers[::-1]
            for case in cases:
                if not case.timed:
                    continue
                for worker in order:
                    answer = worker.ask(case, "time", args)
                    _store(results[case.name][worker.label], "rounds", answer)
                    _progress(args, f"round {number + 1}/{rounds} {case.name} [{worker.label}]", answer)
    info["load_after"] = os.getloadavg()
    labels = [w.label for w in workers]
    return {
        "machine": info,
        "rounds": rounds,
        "quick": bool(args.quick),
        "revisions": labels,
        "skipped": skipped,
        "cases": {
            name: {label: summarise(name, data) for label, data in per.items()}
            for name, per in results.items()
        },
    }


def _store(slot: dict[str, Any], key: str, answer: dict[str, Any]) -> None:
    if "error" in answer:
        slot["errors"].append(answer["error"])
    elif key == "rounds":
        slot["rounds"].append(answer["ok"])
    else:
        slot["counts"] = answer["ok"]


def _progress(args: argparse.Namespace, what: str, answer: dict[str, Any]) -> None:
    if args.verbose or "error" in answer:
        state = answer.get("error", "ok")
        print(f"  {what}: {state}", file=sys.stderr, flush=True)


def profile(name: str, quick: bool, events: int | None) -> int:
    """One timed round of ``name`` in this process, its drain under cProfile; the top functions."""
    import cProfile
    import pstats

    sys.path.insert(0, str(ROOT / "src"))
    from cases import run_request

    case = select(name)[0]
    if case.kind != "drain":
        raise SystemExit(f"--profile takes a case that drains a queue, not {case.name} ({case.kind})")
    profiler = cProfile.Profile()
    result = run_request(case, "time", quick, profiler=profiler, events=events)
    print(json.dumps(result))
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(25)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rounds", type=int, help=f"timed rounds per case (default {DEFAULT_ROUNDS}; 1 with --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="small workloads, one round: a smoke test")
    parser.add_argument("--cases", help="comma-separated case names or patterns (default: all)")
    parser.add_argument(
        "--events", type=int, help="events per round for every case but import (queue messages for workers-*)"
    )
    parser.add_argument("--compare", metavar="REV", help="also measure git revision REV, interleaved")
    parser.add_argument("--json", metavar="FILE", help="write every measurement and summary to FILE")
    parser.add_argument("--profile", metavar="CASE", help="run one round of CASE under cProfile")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="report progress on stderr")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve()
    if args.list:
        from report import GOALS

        for case in CASES:
            goal = GOALS.get(case.name, ("",))[0]
            print(f"{case.name:<26}{case.kind:<12}{case.events:>7,}  {goal}")
        return 0
    if args.profile:
        return profile(args.profile, args.quick, args.events)
    result = run(args)
    print(render(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    failed = [n for n, per in result["cases"].items() if any(s["errors"] for s in per.values())]
    if failed:
        print(f"errors in: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
