"""``commproc channels``: the installed channel plugins."""

from __future__ import annotations

import argparse
from typing import Any

from commproc_core.factory import ProcessorFactory

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "channels",
        help="list channel plugins and whether they load",
        description="List every discovered channel: its distribution, version and whether it loads.",
    )
    parser.set_defaults(handler=list_plugins)


def list_plugins(args: argparse.Namespace) -> int:
    del args
    factory = ProcessorFactory()
    infos = factory.list_channels()
    if not infos:
        print("no channels installed (pip install commproc-sms commproc-email)")
        return 0
    rows = [("CHANNEL", "DISTRIBUTION", "VERSION", "STATUS")]
    broken = False
    for info in infos:
        if info.conflicts:
            status = "conflict: also in " + ", ".join(info.conflicts)
            broken = True
        else:
            error = factory.load_error(info.name)
            status = "ok" if error is None else f"broken: {error.__cause__!r}"
            broken = broken or error is not None
        rows.append((info.name, info.distribution, info.version, status))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    return 1 if broken else 0
