"""Training and inference: models, baselines, evaluation, the MLflow registry, promotion
and scoring.
"""
