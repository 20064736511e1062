"""Reading a Prometheus exposition back as {(name, labels): value} for exact comparisons."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

Sample = tuple[str, frozenset[tuple[str, str]]]


def parse(text: str) -> dict[Sample, float]:
    out: dict[Sample, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def scrape_registry(registry: CollectorRegistry) -> dict[Sample, float]:
    return parse(generate_latest(registry).decode())


def sample(name: str, **labels: str) -> Sample:
    return name, frozenset(labels.items())


def select(samples: Mapping[Sample, float], name: str, **labels: str) -> dict[Sample, float]:
    """The samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return {k: v for k, v in samples.items() if k[0] == name and want <= k[1]}


def total(samples: Mapping[Sample, float], name: str, **labels: str) -> float:
    return sum(select(samples, name, **labels).values())
