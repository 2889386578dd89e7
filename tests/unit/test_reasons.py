"""top_reasons and the importance sample of a scoring run (clm.ml.scoring)."""

from datetime import date

import numpy as np

from clm.ml.scoring import importance_sample, top_reasons


def test_top_reasons_name_the_largest_positive_contributions_in_order() -> None:
    contrib = np.array([[0.1, 0.5, -0.2, 0.3], [-1.0, -0.5, -0.1, -0.2], [0.0, 0.2, 0.0, 0.0]])
    names = ["a", "b", "c", "d"]
    assert top_reasons(contrib, names) == ["b, d, a", "none", "b"]
    assert top_reasons(contrib, names, k=1) == ["b", "none", "b"]


def test_the_importance_sample_is_every_row_or_a_fixed_draw_per_day() -> None:
    day = date(2024, 6, 1)
    assert importance_sample(50, day, size=100).tolist() == list(range(50))
    drawn = importance_sample(10_000, day, size=1_000)
    assert len(drawn) == len(set(drawn)) == 1_000 and (np.diff(drawn) > 0).all()
    assert drawn.min() >= 0 and drawn.max() < 10_000
    assert drawn.tolist() == importance_sample(10_000, day, size=1_000).tolist()
    assert drawn.tolist() != importance_sample(10_000, date(2024, 6, 2), size=1_000).tolist()
