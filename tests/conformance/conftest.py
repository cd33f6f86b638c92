"""``make conformance``: the external corpus is found from ``NSW_CORPUS`` (default ``../shared/corpus``).

Without it the run stops at once and says what to fetch (never a skipped test): ``make test`` does not need it.
"""

from __future__ import annotations

import pytest

from ops._conformance import corpus_dir, missing_corpus

CORPUS = corpus_dir()
#: The UK CDS schemas and samples, and the shared research data beside the corpus.
HMRC_CORPUS = CORPUS / "hmrc-cds"
HMRC_SCHEMAS = HMRC_CORPUS / "schemas"
SHARED_DATA = CORPUS.parent / "data"



def pytest_configure(config: pytest.Config) -> None:
    """Stop before collecting anything when the corpus is absent (pytest's usage error: exit code 4)."""
    if (problem := missing_corpus(CORPUS)) is not None:
        raise pytest.UsageError(problem)
