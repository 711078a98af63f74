"""Beam plumbing shared by the preprocessing DoFns: counters, dead-letter and filtered outputs.

Every DoFn that rejects an input yields :func:`reject` (tagged output :data:`DEAD_LETTER`, counter
``rejected_<code>``); one that leaves an input out on purpose yields :func:`skip` (tagged output
:data:`FILTERED`, counter ``filtered_<reason>``). Counters live in the ``preprocess`` namespace
(docs/preprocessing.md lists them).
"""

from __future__ import annotations

from typing import Any

from apache_beam import pvalue
from apache_beam.metrics import Metrics

from pipelines.records import DeadLetter, Filtered

NAMESPACE = "preprocess"
DEAD_LETTER = "dead_letter"  # tagged output of rejected inputs (records.DeadLetter)
FILTERED = "filtered"  # tagged output of inputs left out on purpose (records.Filtered)


def counter(name: str):
    """The Beam counter ``name`` of the ``preprocess`` namespace."""
    return Metrics.counter(NAMESPACE, name)


def count_rejected(letter: DeadLetter) -> DeadLetter:
    """Count ``letter`` under ``rejected_<code>`` and return it (for steps that emit dead letters untagged)."""
    counter("rejected_" + letter.code).inc()
    return letter


def reject(letter: DeadLetter) -> pvalue.TaggedOutput:
    """``letter`` counted and tagged for the :data:`DEAD_LETTER` output."""
    return pvalue.TaggedOutput(DEAD_LETTER, count_rejected(letter))


def skip(reason: str, item: str) -> pvalue.TaggedOutput:
    """``item`` left out for ``reason``, counted under ``filtered_<reason>`` and tagged :data:`FILTERED`."""
    counter("filtered_" + reason).inc()
    return pvalue.TaggedOutput(FILTERED, Filtered(reason, item))


def untagged(element: Any) -> Any:
    """The value of a tagged output, or ``element`` itself (for DoFns driven outside a pipeline)."""
    return element.value if isinstance(element, pvalue.TaggedOutput) else element


def is_tagged(element: Any) -> bool:
    """True for a tagged output (a dead letter or a filtered input of these DoFns)."""
    return isinstance(element, pvalue.TaggedOutput)
