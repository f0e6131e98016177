"""The Data Quality Pipeline's built-in tools: ``dq.initialize`` to ``dq.report``.

The pipeline (``engine/graphs/data_quality.json``) makes a synthetic customer
dataset with known problems (:mod:`.dataset`), then loops profile -> detect ->
generate rules -> apply rules -> evaluate until the quality target is met, the
anomalies are gone or the iteration cap is reached, and reports in the shape
of Great Expectations validation results (:mod:`.stages`).

Fixing is honest (:mod:`.rules`): a rule repairs what can be repaired
(normalises a format, fills from a documented source), drops a row only when an
identical row stays, and moves what cannot be repaired to ``quarantine`` with
the reason. No row disappears otherwise.

Quality score::

    score = passing / (dataset_rows + quarantined_rows)

where ``passing`` counts the rows of the dataset that pass every check
(:mod:`.checks`), and a later copy of an exact duplicate fails ``rows_unique``.
A quarantined row counts in the population and never as passing, so
quarantining a failing row leaves the score where it was and quarantining a
good row lowers it: the score rises only by repairing rows or by dropping exact
duplicates, whose values the kept copy still holds.
"""

from engine.tools.dq import parallel as parallel
from engine.tools.dq import stages as stages
from engine.tools.dq.checks import CHECKS, quality_score, run_checks
from engine.tools.dq.dataset import COLUMNS, generate
from engine.tools.dq.normalise import (
    is_valid_email,
    is_valid_phone,
    normalise_country,
    normalise_email,
    normalise_phone,
    phone_country,
)

__all__ = [
    "CHECKS",
    "COLUMNS",
    "generate",
    "is_valid_email",
    "is_valid_phone",
    "normalise_country",
    "normalise_email",
    "normalise_phone",
    "phone_country",
    "quality_score",
    "run_checks",
]
