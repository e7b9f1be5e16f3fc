"""How an evaluation is scored: pure functions of a scorecard's criteria and the answers.

The formula (docs/quality.md, "How the score is computed"):

* each answered criterion's value is mapped from its scale to 0..1:
  ``(value - low) / (high - low)`` (a "yes_no" criterion: no 0, yes 1);
* the score is the weighted mean of those, times 100:
  ``100 × Σ weight·normalised / Σ weight``, over the answered criteria only: an answer
  of ``None`` ("not applicable") takes its weight out of the sum, so a call without a
  transfer is not marked down on "transferred correctly";
* a critical criterion answered at the bottom of its scale (a "no", or 1 on a 1–5 scale)
  fails the whole evaluation: the score is 0 (the "auto-fail"), and so is its section's;
* section scores are the same weighted mean over the criteria of one section.

Nothing here touches the database: the service validates and stores, this computes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sparklecomm.core.errors import InvalidInput

#: A pass/fail criterion: 0 (no, failed) or 1 (yes, passed).
YES_NO = "yes_no"
#: Numeric scales: "low-high", e.g. "1-5" or "0-10".
SCALE_RE = re.compile(r"^(\d{1,2})-(\d{1,2})$")
CRITERION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
MIN_WEIGHT, MAX_WEIGHT = 1, 10
MAX_CRITERIA = 100
MAX_LABEL = 200
MAX_SECTION = 60
MAX_GUIDANCE = 1000
MAX_ANSWER_COMMENT = 1000


def scale_bounds(scale: Any, field_name: str = "scale") -> tuple[int, int]:
    """The lowest and highest value of a scale: "yes_no" is 0–1, "1-5" is 1–5. A scale
    has at least two points and at most 0–10."""
    if scale == YES_NO:
        return 0, 1
    match = SCALE_RE.match(scale) if isinstance(scale, str) else None
    if match is None:
        raise InvalidInput(
            f"{field_name} must be 'yes_no' or a range such as '1-5' or '0-10', not {scale!r}",
            field=field_name,
        )
    low, high = int(match.group(1)), int(match.group(2))
    if not low < high <= 10:
        raise InvalidInput(
            f"{field_name} {scale!r} must go up, from 0 or more to at most 10 (e.g. '1-5')",
            field=field_name,
        )
    return low, high


def _text(value: Any, name: str, max_length: int, *, required: bool) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text", field=name)
    text = value.strip()
    if required and not text:
        raise InvalidInput(f"{name} must not be empty", field=name)
    if len(text) > max_length:
        raise InvalidInput(f"{name} is longer than {max_length} characters", field=name)
    return text


def check_criteria(criteria: Any) -> list[dict[str, Any]]:
    """The criteria of a scorecard, validated and normalised: ``[{id, section, label,
    guidance, weight, scale, critical}]``. Each mistake is named with its place, e.g.
    ``criteria[2].weight``. A criterion without an id gets ``c1``, ``c2`` ... by position."""
    if not isinstance(criteria, list) or not criteria:
        raise InvalidInput("a scorecard needs at least one criterion", field="criteria")
    if len(criteria) > MAX_CRITERIA:
        raise InvalidInput(f"a scorecard has at most {MAX_CRITERIA} criteria", field="criteria")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, raw in enumerate(criteria):
        at = f"criteria[{n}]"
        if not isinstance(raw, Mapping):
            raise InvalidInput(f"{at} must be an object", field=at)
        unknown = set(raw) - {"id", "section", "label", "guidance", "weight", "scale", "critical"}
        if unknown:
            raise InvalidInput(f"{at} has unknown fields: {', '.join(sorted(unknown))}", field=at)
        cid = raw.get("id") or f"c{n + 1}"
        if not isinstance(cid, str) or not CRITERION_ID_RE.match(cid):
            raise InvalidInput(
                f"{at}.id must be 1 to 40 letters, digits, '_' or '-'", field=f"{at}.id"
            )
        if cid in seen:
            raise InvalidInput(f"{at}.id {cid!r} is used twice", field=f"{at}.id")
        seen.add(cid)
        weight = raw.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise InvalidInput(f"{at}.weight must be a whole number", field=f"{at}.weight")
        if not MIN_WEIGHT <= weight <= MAX_WEIGHT:
            raise InvalidInput(
                f"{at}.weight must be {MIN_WEIGHT} to {MAX_WEIGHT}, not {weight}",
                field=f"{at}.weight",
            )
        scale = raw.get("scale", "1-5")
        scale_bounds(scale, f"{at}.scale")
        critical = raw.get("critical", False)
        if not isinstance(critical, bool):
            raise InvalidInput(f"{at}.critical must be true or false", field=f"{at}.critical")
        out.append(
            {
                "id": cid,
                "section": _text(raw.get("section"), f"{at}.section", MAX_SECTION, required=False)
                or "General",
                "label": _text(raw.get("label"), f"{at}.label", MAX_LABEL, required=True),
                "guidance": _text(
                    raw.get("guidance"), f"{at}.guidance", MAX_GUIDANCE, required=False
                ),
                "weight": weight,
                "scale": scale,
                "critical": critical,
            }
        )
    return out


def check_answers(
    criteria: Sequence[Mapping[str, Any]], answers: Any, *, complete: bool
) -> dict[str, dict[str, Any]]:
    """Answers validated against a scorecard version: ``{criterion_id: {value, comment}}``
    where ``value`` is a whole number on the criterion's scale or None (not applicable).
    ``complete``: every criterion must be answered (to submit); a draft may leave some
    out. Mistakes are named ``answers.<criterion_id>``."""
    if answers is None:
        answers = {}
    if not isinstance(answers, Mapping):
        raise InvalidInput("answers must be an object keyed by criterion id", field="answers")
    by_id = {c["id"]: c for c in criteria}
    out: dict[str, dict[str, Any]] = {}
    for cid, raw in answers.items():
        at = f"answers.{cid}"
        criterion = by_id.get(cid)
        if criterion is None:
            raise InvalidInput(
                f"the scorecard has no criterion {cid!r} (criteria: {', '.join(by_id)})", field=at
            )
        if not isinstance(raw, Mapping):
            raise InvalidInput(f"{at} must be {{'value': ..., 'comment': ...}}", field=at)
        unknown = set(raw) - {"value", "comment"}
        if unknown:
            raise InvalidInput(f"{at} has unknown fields: {', '.join(sorted(unknown))}", field=at)
        value = raw.get("value")
        if value is not None:
            low, high = scale_bounds(criterion["scale"])
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                what = "0 (no) or 1 (yes)" if criterion["scale"] == YES_NO else f"{low} to {high}"
                raise InvalidInput(
                    f"{at}: {criterion['label']!r} takes {what}, or null for not applicable",
                    field=at,
                )
        comment = _text(raw.get("comment"), f"{at}.comment", MAX_ANSWER_COMMENT, required=False)
        out[cid] = {"value": value, "comment": comment}
    if complete:
        for c in criteria:
            if c["id"] not in out:
                raise InvalidInput(
                    f"{c['label']!r} is not answered yet (a value, or null for not applicable)",
                    field=f"answers.{c['id']}",
                )
    return out


@dataclass(frozen=True)
class Score:
    """An evaluation's result: the overall score (None when nothing applicable was
    answered), the score of each section (None likewise), and the critical criteria that
    failed (any: the score is 0)."""

    score: float | None
    sections: dict[str, float | None] = field(default_factory=dict)
    failed_critical: tuple[str, ...] = ()


def _mean(parts: Sequence[tuple[int, float]]) -> float | None:
    total = sum(w for w, _ in parts)
    if not total:
        return None
    return round(100 * sum(w * x for w, x in parts) / total, 1)


def score(criteria: Sequence[Mapping[str, Any]], answers: Mapping[str, Mapping[str, Any]]) -> Score:
    """The score of ``answers`` (validated by :func:`check_answers`) on ``criteria``: see the
    module's docstring for the formula. Unanswered criteria count like not applicable, so a
    draft shows the score of what was answered so far."""
    overall: list[tuple[int, float]] = []
    sections: dict[str, list[tuple[int, float]]] = {}
    failed: list[str] = []
    failed_sections: set[str] = set()
    for c in criteria:
        sections.setdefault(c["section"], [])
        value = (answers.get(c["id"]) or {}).get("value")
        if value is None:
            continue
        low, high = scale_bounds(c["scale"])
        normalised = (value - low) / (high - low)
        overall.append((c["weight"], normalised))
        sections[c["section"]].append((c["weight"], normalised))
        if c["critical"] and value == low:
            failed.append(c["id"])
            failed_sections.add(c["section"])
    section_scores = {
        name: (0.0 if name in failed_sections else _mean(parts)) for name, parts in sections.items()
    }
    total = 0.0 if failed else _mean(overall)
    return Score(total, section_scores, tuple(failed))
