"""Customer lifecycle pipeline.

Four layers, each a subpackage; a lower layer never imports a higher one
(``lint-imports`` keeps it so, see pyproject.toml):

- ``clm.app``: the application shell (CLI, runner, Airflow tasks, report, stack);
- ``clm.ml``: training and inference (models, evaluation, registry, scoring);
- ``clm.data``: the data (ingest and validation, features and Feast, warehouse);
- ``clm.core``: settings, I/O, data contracts, redaction and the inert console.
"""

__version__ = "0.1.0"
