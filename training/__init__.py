"""Training, evaluation, comparison and promotion."""
