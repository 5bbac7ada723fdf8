"""A progress line for long commands: redrawn in place on a terminal, silent in a pipe or a file.

``commproc replay`` of a large folder, ``commproc dlq dump`` and ``commproc
dlq redrive`` show one line on stderr (``dump  1,234 saved  310/s``) while a
person watches. When stderr is not a terminal (a log collector, a CI job,
``2> file``) nothing is drawn, so logs stay clean; the command's own summary
line is printed either way.
"""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["Progress"]

#: Redraws per second at most: a terminal does not need more, and writes cost.
_REDRAWS_PER_SECOND = 8


class Progress:
    """``update(done, total)`` redraws ``label  done/total  rate/s`` on ``stream`` when it is a terminal."""

    def __init__(
        self,
        stream: TextIO | None,
        label: str,
        *,
        unit: str = "messages",
        enabled: bool | None = None,
    ) -> None:
        self.stream = stream
        self.label = label
        self.unit = unit
        tty = stream is not None and stream.isatty()
        self.enabled = stream is not None and (tty if enabled is None else enabled)
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._width = 0

    def update(self, done: int, total: int | None = None, note: str = "", *, force: bool = False) -> None:
        if not self.enabled or self.stream is None:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < 1 / _REDRAWS_PER_SECOND:
            return
        self._last_draw = now
        elapsed = max(now - self._started, 1e-6)
        count = f"{done:,}/{total:,}" if total is not None else f"{done:,}"
        line = f"{self.label}  {count} {self.unit}  {done / elapsed:,.1f}/s"
        if note:
            line += f"  {note}"
        # Pad over the previous, longer line instead of relying on terminal escape codes.
        padded = line.ljust(self._width)
        self._width = len(line)
        self.stream.write("\r" + padded)
        self.stream.flush()

    def close(self) -> None:
        """Clear the line, so the summary that follows starts on a clean one."""
        if self.enabled and self.stream is not None and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0
