"""Terminal output of the CLI, where every value from data or an error is inert.

Landed values (ids, statuses, column and file names) and exception messages
reach the terminal in tables, errors and logs. Printed as Rich markup, a value
such as ``[bold]`` or ``[link=…]`` would be interpreted (or crash the print),
and a control character such as ESC could rewrite the terminal. So:

- the console parses no markup, emoji codes or highlighting in strings;
- :func:`styled` is the one way to style: our own markup template, with each
  value escaped;
- every string printed, and every log message, has its control and
  bidirectional-override characters shown as escapes (``\\x1b``, ``\\u202e``).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.text import Text

# C0/C1 controls but tab and newline, zero-width marks and bidirectional overrides.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(value: object) -> str:
    """``value`` as text that cannot move the cursor, recolour or reorder the terminal."""
    return _UNSAFE.sub(_escape_char, str(value))


def styled(template: str, *values: object) -> Text:
    """Rich markup of our own (``template``, with ``{}`` slots) and values shown verbatim.

    >>> styled("[red]error:[/] {}", "[bold]not bold").plain
    'error: [bold]not bold'
    """
    return Text.from_markup(template.format(*(escape(inert(v)) for v in values)))


class InertConsole(Console):
    """A Console that shows strings as plain, inert text."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(markup=False, emoji=False, highlight=False, **kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(inert(text), **kwargs)


class InertRichHandler(RichHandler):
    """Rich log lines whose messages (often quoting data) are inert."""

    def render_message(self, record: logging.LogRecord, message: str) -> Any:
        return super().render_message(record, inert(message))


# Off a terminal (a pipe, a log, a test) nothing is hard-wrapped, so messages stay greppable.
console = InertConsole(soft_wrap=not sys.stdout.isatty())
