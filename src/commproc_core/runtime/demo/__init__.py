"""The ``commproc demo``: bundled realistic SMS and email events, the real processors, a SQLite file.

The events live in ``events/sms`` and ``events/email`` (one queue message
body per file, as SQS would hold it).
"""

from commproc_core.runtime.demo.runner import (
    DEFAULT_DATABASE,
    DEMO_CHANNELS,
    DemoSummary,
    bundled_events,
    format_summary,
    run_demo,
)

__all__ = ["DEFAULT_DATABASE", "DEMO_CHANNELS", "DemoSummary", "bundled_events", "format_summary", "run_demo"]
