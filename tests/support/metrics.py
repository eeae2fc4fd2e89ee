"""Reading metrics: a sample of this process's default registry, or of a scraped text."""

from __future__ import annotations

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families


def metric(name: str, **labels: str) -> float:
    """A sample of the default registry; 0 when the series does not exist (yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scraped(text: str, name: str, **labels: str) -> float | None:
    """The first sample ``name`` whose labels include ``labels`` in a /metrics text; None when none."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None
