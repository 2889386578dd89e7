"""The application shell: the CLI, the runner and Airflow tasks, the report, the stack."""
