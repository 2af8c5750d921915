"""What a filter does with one line, stage by stage: ``gardien regex --explain``.

For a text line: which date template found the time (and the text it took), whether the
prefregex matched (and what it passed on), each failregex and ignoreregex with matched or not
and the captures of those that matched. For a JSON record: its decoded fields and, for each
rule, which condition failed. Then the outcome, which is what a :class:`LineMatcher` (the
daemon's first-match matching) made of the line: a failure (host, time, captures), ignored, no
failure by itself, or no match, and why.

The stages are recomputed from the filter's own compiled parts; the outcome is the matcher's,
so the explanation can never disagree with what the daemon does. With a multi-line filter
(``maxlines > 1`` or ``<F-MLFID>`` connections) the outcome also depends on the lines given
before, in the same matcher.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from gardien.matching.dates import DateDetector
from gardien.matching.filter import LineMatcher, public_fields
from gardien.matching.jsonrules import decode_record, flatten, json_start, record_time

__all__ = ["ConditionTrial", "DateStage", "Explanation", "Trial", "explain_line"]

#: fields of a JSON record shown at most, and characters of a value
SHOWN_FIELDS = 60
SHOWN_VALUE = 100


@dataclass(frozen=True)
class DateStage:
    """How the time of the line was found."""

    template: str | None  # the date template (or ``JSON path``) that found it
    text: str  # the text it took
    time: float | None
    note: str  # how, in words


@dataclass(frozen=True)
class ConditionTrial:
    """One condition of a JSON rule on the record."""

    condition: str
    holds: bool
    why_not: str = ""


@dataclass(frozen=True)
class Trial:
    """One failregex, ignoreregex or JSON rule tried on the line."""

    kind: str  # failregex, ignoreregex, failjson, ignorejson
    number: int  # from 1, in its kind, as fail2ban-regex numbers them
    pattern: str
    matched: bool
    captures: dict[str, object] = field(default_factory=dict)
    conditions: tuple[ConditionTrial, ...] = ()


@dataclass(frozen=True)
class Explanation:
    """Every stage of one line through one filter, and the outcome."""

    line: str
    format: str  # "text" or "json"
    date: DateStage
    outcome: str  # "failure", "ignored", "no failure by itself", "pending", "no match"
    reason: str
    host: str | None = None
    time: float | None = None
    fields: dict[str, object] = field(default_factory=dict)
    prefregex: str | None = None
    prefregex_matched: bool = False
    content: str | None = None  # what the prefregex passed on
    text: str = ""  # what the failregexes saw (text lines)
    record: tuple[tuple[str, str], ...] = ()  # decoded fields (JSON records)
    record_problem: str = ""  # why the line is not a record
    trials: tuple[Trial, ...] = ()
    ignore_trials: tuple[Trial, ...] = ()

    @property
    def is_failure(self) -> bool:
        return self.outcome == "failure"

    def lines(self) -> Iterator[str]:
        """The explanation as text, one stage per block."""
        yield f"line:       {self.line}"
        yield f"format:     {self.format}"
        date = self.date
        when = f" -> {_time_text(date.time)}" if date.time is not None else ""
        if date.template is not None:
            yield f"date:       found by {date.template}: {date.text!r}{when}"
        else:
            yield f"date:       {date.note}{when}"
        if self.format == "json":
            if self.record_problem:
                yield f"record:     not decoded: {self.record_problem}"
            else:
                yield "record:"
                for path, value in self.record[:SHOWN_FIELDS]:
                    yield f"  {path} = {_short(value)}"
                if len(self.record) > SHOWN_FIELDS:
                    yield f"  ... {len(self.record) - SHOWN_FIELDS} more fields"
        else:
            if self.prefregex is not None:
                state = "matched" if self.prefregex_matched else "did not match"
                yield f"prefregex:  {state}: {self.prefregex}"
                if self.content is not None:
                    yield f"  passed on: {self.content!r}"
            yield f"text:       {self.text!r}"
        for title, trials in (("fail", self.trials), ("ignore", self.ignore_trials)):
            for trial in trials:
                mark = "matched" if trial.matched else "no match"
                yield f"{trial.kind} {trial.number}: {mark}: {trial.pattern}"
                for condition in trial.conditions:
                    sign = "ok " if condition.holds else "NO "
                    detail = f"  ({condition.why_not})" if condition.why_not else ""
                    yield f"    {sign} {condition.condition}{detail}"
                for name, captured in trial.captures.items():
                    yield f"    {name} = {_short(str(captured))}"
            if not trials:
                yield f"{title}: no {title} rules"
        yield f"outcome:    {self.outcome}: {self.reason}"
        if self.host is not None:
            yield f"  host = {self.host}"
            yield f"  time = {_time_text(self.time)}"
            for name, captured in self.fields.items():
                yield f"  {name} = {_short(str(captured))}"


def _short(text: str) -> str:
    return text if len(text) <= SHOWN_VALUE else text[: SHOWN_VALUE - 3] + "..."


def _time_text(epoch: float | None) -> str:
    if epoch is None or not math.isfinite(epoch):
        return "none"
    try:
        return dt.datetime.fromtimestamp(epoch).isoformat()
    except (OverflowError, OSError, ValueError):
        return repr(epoch)


def _captures(groups: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in public_fields(groups).items() if k not in ("host", "matches")} | {
        k: v for k, v in groups.items() if k in ("ip4", "ip6", "dns", "fid") and v is not None
    }


def explain_line(
    matcher: LineMatcher, line: str, *, date: float | None = None, date_text: str = ""
) -> Explanation:
    """Explain ``line`` and match it with ``matcher`` (a first-match matcher, as the daemon's:
    its state moves on, so lines explained one after the other behave as in a log)."""
    flt = matcher.filter
    start = json_start(line) if flt.failjson else -1
    result = matcher.process(line, date=date, date_text=date_text)
    stages: dict[str, object] = {}
    if start >= 0:
        stages = _json_stages(matcher, line, start)
    else:
        stages = _text_stages(matcher, line, given=date is not None)
    if result.date_format is not None:
        date_stage = DateStage(result.date_format, result.time_text, result.time, "")
    elif date is not None:
        date_stage = DateStage(None, date_text, result.time, "given by the source (journal)")
    elif result.time is not None:
        date_stage = DateStage(
            None, result.time_text, result.time, "none in the line: the previous line's time"
        )
    else:
        date_stage = DateStage(
            None, "", None, "none found: the daemon takes the time it reads the line"
        )
    why = str(stages.pop("why", "") or "")
    failure = result.failures[0] if result.failures else None
    trials: tuple[Trial, ...] = stages.get("trials", ())  # type: ignore[assignment]
    if failure is not None:
        outcome, reason = "failure", _winner(failure.regex_index, flt)
    elif result.ignored:
        outcome, reason = "ignored", "an ignore rule matched too"
    elif result.nofail:
        outcome = "no failure by itself"
        reason = (
            "the rule that matched marks a line that is no failure by itself (<F-NOFAIL>), or "
            "its connection's address is not known yet (<F-MLFID>): see the lines around it"
        )
    elif any(t.matched for t in trials):
        outcome, reason = "no match", "a rule matched, but the line has no time (skipped)"
    else:
        outcome = "no match"
        reason = why or "no rule matched"
    return Explanation(
        line=line,
        format="json" if start >= 0 else "text",
        date=date_stage,
        outcome=outcome,
        reason=reason,
        host=failure.host if failure is not None else None,
        time=failure.time if failure is not None else None,
        fields=public_fields(failure.fields) if failure is not None else {},
        **stages,  # type: ignore[arg-type]
    )


def _winner(index: int, flt: object) -> str:
    failregex = getattr(flt, "failregex", ())
    if index < len(failregex):
        return f"failregex {index + 1} matched first"
    return f"failjson {index - len(failregex) + 1} matched first"


def _text_stages(matcher: LineMatcher, line: str, *, given: bool) -> dict[str, object]:
    flt = matcher.filter
    before, after = "", line
    if not given:
        found = DateDetector(flt.date_templates).find(line)
        if found is not None:
            start, end = found[0].span(1)
            before, after = line[:start], line[end:]
    text = before + after + "\n"
    stages: dict[str, object] = {}
    why = ""
    if flt.prefregex is not None:
        stages["prefregex"] = flt.prefregex.source.pattern
        pre = flt.prefregex.regex.search(text)
        stages["prefregex_matched"] = pre is not None
        if pre is None:
            why = "the prefregex did not match: no failregex was tried"
            stages.update(text=text.rstrip("\n"), why=why)
            return stages
        content = flt.prefregex.fields(pre).get("content")
        if content:
            stages["content"] = content
            text = content + "\n"
    trials = []
    for number, regex in enumerate(flt.failregex, start=1):
        match = regex.regex.search(text)
        captures = _captures(regex.fields(match)) if match is not None else {}
        trials.append(Trial("failregex", number, regex.source.pattern, match is not None, captures))
    ignore_trials = [
        Trial("ignoreregex", n, r.source.pattern, r.regex.search(text) is not None)
        for n, r in enumerate(flt.ignoreregex, start=1)
    ]
    if flt.failjson and not any(t.matched for t in trials):
        why = "not a JSON record, and no failregex matched"
    stages.update(
        text=text.rstrip("\n"), trials=tuple(trials), ignore_trials=tuple(ignore_trials), why=why
    )
    return stages


def _json_stages(matcher: LineMatcher, line: str, start: int) -> dict[str, object]:
    flt = matcher.filter
    record, problem = decode_record(line, start)
    if record is None:
        return {"record_problem": problem, "why": f"the record is not decoded: {problem}"}
    trials = []
    for kind, rules in (("failjson", flt.failjson), ("ignorejson", flt.ignorejson)):
        for number, rule in enumerate(rules, start=1):
            conditions = []
            captures: dict[str, object] = {}
            for condition in rule.conditions:
                found = condition.match(record)
                conditions.append(
                    ConditionTrial(
                        condition.text,
                        found is not None,
                        "" if found is not None else condition.why_not(record),
                    )
                )
                for key, value in (found or {}).items():
                    captures.setdefault(key, value)
            matched = all(c.holds for c in conditions)
            trials.append(
                Trial(
                    kind,
                    number,
                    rule.source.pattern,
                    matched,
                    _captures(captures) if matched else {},
                    tuple(conditions),
                )
            )
    why = "no failjson rule holds"
    if flt.jsontime and record_time(record, flt.jsontime)[0] is None:
        why += f" (and no time in {', '.join('.'.join(p) for p in flt.jsontime)})"
    return {
        "record": tuple(flatten(record)),
        "trials": tuple(t for t in trials if t.kind == "failjson"),
        "ignore_trials": tuple(t for t in trials if t.kind == "ignorejson"),
        "why": why,
    }
