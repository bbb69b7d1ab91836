"""Segment rules: read ``segments.yaml``, validate it, and turn it into one SQL CASE expression.

The rules are data (thresholds people tune), so they are validated strictly: an unknown feature,
operator or a non-number names the file and the rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SEGMENTS_FILE = Path(__file__).resolve().parent / "segments.yaml"

# The user-table columns a rule may test (computed in features/offline_sql.py).
SEGMENT_INPUTS = frozenset(
    {
        "recency_days",
        "frequency_90d",
        "monetary_90d",
        "avg_order_value",
        "days_since_last_purchase",
        "purchases_total",
        "tenure_days",
        "watch_minutes_7d",
        "watch_minutes_30d",
        "streams_watched_7d",
        "product_clicks_7d",
        "carts_7d",
        "comments_7d",
        "push_open_rate_30d",
    }
)
_COND = re.compile(r"^\s*(<=|>=|==|!=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class SegmentConfigError(ValueError):
    exit_code = 2
    http_status = 400


@dataclass(frozen=True)
class Condition:
    feature: str
    op: str
    value: float

    def sql(self) -> str:
        op = "=" if self.op == "==" else ("<>" if self.op == "!=" else self.op)
        return f"({self.feature} {op} {self.value!r})"


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    conditions: tuple[Condition, ...]


@dataclass(frozen=True)
class SegmentRules:
    rules: tuple[Rule, ...]
    default: str

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rules] + [self.default]

    def case_sql(self) -> str:
        """A CASE expression over the user feature columns naming each row's segment."""
        whens = " ".join(
            f"WHEN {' AND '.join(c.sql() for c in r.conditions)} THEN '{r.name}'" for r in self.rules
        )
        return f"CASE {whens} ELSE '{self.default}' END"


def load_segment_rules(path: str | Path | None = None) -> SegmentRules:
    from features.yaml_file import read_yaml

    p = Path(path) if path else DEFAULT_SEGMENTS_FILE
    raw = read_yaml(p, "segment rules file", SegmentConfigError)
    if not isinstance(raw, dict) or not isinstance(raw.get("rules"), list):
        raise SegmentConfigError(f"{p}: expected a mapping with a 'rules' list")
    unknown_keys = set(raw) - {"rules", "default"}
    if unknown_keys:
        raise SegmentConfigError(f"{p}: unknown top-level keys {sorted(unknown_keys)}")
    default = str(raw.get("default", "other"))
    if not _NAME.match(default):
        raise SegmentConfigError(f"{p}: default segment name {default!r} must match {_NAME.pattern}")
    rules: list[Rule] = []
    seen: set[str] = {default}
    for i, item in enumerate(raw["rules"]):
        where = f"{p}: rule {i + 1}"
        if not isinstance(item, dict):
            raise SegmentConfigError(f"{where}: expected a mapping with keys name, description, when")
        unknown = sorted(map(str, set(item) - {"name", "description", "when"}))
        if unknown:
            raise SegmentConfigError(
                f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; expected name, description, when"
            )
        name = str(item.get("name", ""))
        if not _NAME.match(name):
            raise SegmentConfigError(f"{where}: segment name {name!r} must match {_NAME.pattern}")
        if name in seen:
            raise SegmentConfigError(f"{where}: segment {name!r} defined twice")
        seen.add(name)
        when = item.get("when")
        if not isinstance(when, dict) or not when:
            raise SegmentConfigError(f"{where} ({name}): 'when' must be a non-empty mapping")
        conds = []
        for feature, expr in when.items():
            if feature not in SEGMENT_INPUTS:
                raise SegmentConfigError(
                    f"{where} ({name}): unknown feature {feature!r}; known: {', '.join(sorted(SEGMENT_INPUTS))}"
                )
            m = _COND.match(str(expr))
            if not m:
                raise SegmentConfigError(
                    f"{where} ({name}): condition {expr!r} on {feature} must look like '>= 3' (ops < <= > >= == !=)"
                )
            conds.append(Condition(feature, m.group(1), float(m.group(2))))
        rules.append(Rule(name, str(item.get("description", "")), tuple(conds)))
    return SegmentRules(tuple(rules), default)
