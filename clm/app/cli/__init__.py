"""``clm``: simulate, run, demo and inspect the customer lifecycle pipeline.

The commands only parse options and render results; the work happens in
``clm.app``, ``clm.ml`` and ``clm.data``. One module per group of commands:
``pipeline`` (simulate, run, score, demo), ``inspect`` (validations, report,
segments, customer), ``models``, ``imports``, ``evaluate``, ``ui`` and
``stack``; ``render`` holds the Rich tables, ``common`` what they all share.
"""

from clm.app.cli.main import app, main

__all__ = ["app", "main"]
