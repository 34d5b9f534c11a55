"""Did distillation work? Base vs student on held-out prompts, scored against the teacher.

Each held-out conversation's last assistant turn is the teacher's answer (the
reference); everything before it is the prompt. The base model (adapter off)
and the student answer greedily, and both are scored with token F1 and ROUGE-L
against the reference, plus answer length, the share cut by the token budget
and the share that ends cleanly at the end-of-turn token (a student that never
stops is this workflow's most reported failure). With a teacher configured,
``judge`` has it grade both answers blind, in random order. Then, unless told
not to, :mod:`engine.retention` checks what the student kept of what the base
knew, and the headline says both: "learned X of Y, kept K of N".

Metrics are pure Python; the model arrives through :mod:`engine.chat`.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import events as ev
from engine.chat_options import DEFAULT_MAX_NEW_TOKENS
from engine.data.types import Conversation, Message
from engine.errors import UserError
from engine.fileio import atomic_write_text
from engine.i18n import N_, _
from engine.run_dir import EVAL_DIR

DEFAULT_N = 50  # prompts: enough to tell models apart, few enough to finish in minutes
MIN_MEANINGFUL = 5  # fewer prompts than this and one answer swings every score
BUDGET_FACTOR = 1.5  # answer budget per reference token of the longest teacher answer
MIN_BUDGET = 64
EXAMPLES_SHOWN = 5
LEARNED_F1 = 0.5  # token F1 against the teacher at which a student answer counts as learned
LEARNED_RULE = N_("learned = the student's answer scores token F1 >= {f1} against the teacher's")
MODELS = ("base", "student")
ProgressCallback = Callable[[int, int, str], None]  # done, total, stage


def learned_rule() -> str:
    """What "learned" means, in the current language."""
    return _(LEARNED_RULE).format(f1=LEARNED_F1)


_WORD = re.compile(r"\w+")


def tokens(text: str) -> list[str]:
    """Lower-case words, punctuation and whitespace dropped: what the scores compare."""
    return _WORD.findall(text.lower())


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of word precision and recall (SQuAD-style, counts respected)."""
    predicted, wanted = tokens(prediction), tokens(reference)
    if not predicted or not wanted:
        return float(predicted == wanted)
    common = sum((Counter(predicted) & Counter(wanted)).values())
    if not common:
        return 0.0
    precision, recall = common / len(predicted), common / len(wanted)
    return 2 * precision * recall / (precision + recall)


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure: the longest common word subsequence, over both lengths."""
    predicted, wanted = tokens(prediction), tokens(reference)
    if not predicted or not wanted:
        return float(predicted == wanted)
    previous = [0] * (len(wanted) + 1)
    for word in predicted:
        current = [0]
        for j, other in enumerate(wanted):
            current.append(previous[j] + 1 if word == other else max(previous[j + 1], current[j]))
        previous = current
    lcs = previous[-1]
    if not lcs:
        return 0.0
    precision, recall = lcs / len(predicted), lcs / len(wanted)
    return 2 * precision * recall / (precision + recall)


@dataclass
class EvalItem:
    """One held-out prompt, the teacher's reference answer and what each model said."""

    messages: list[Message]
    reference: str
    answers: dict[str, dict[str, Any]]  # model -> text, tokens, cut, ended_cleanly, f1, rouge_l


def split_prompt(conversation: Conversation) -> tuple[list[Message], str] | None:
    """Messages up to the last assistant turn, and that turn's text (None if it has none)."""
    messages = conversation.messages
    last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=-1)
    if last < 1:
        return None
    return [dict(m) for m in messages[:last]], messages[last]["content"]


@dataclass(frozen=True)
class EvalSet:
    """The prompts an evaluation answers, and the sentence that says where they came from."""

    pairs: list[tuple[list[Message], str]]  # (prompt messages, the teacher's reference)
    source: str
    notes: list[str]


def _distinct(conversations: list[Conversation]) -> list[tuple[list[Message], str]]:
    """(prompt, reference) pairs, each prompt once: a repeated prompt scores the same twice."""
    seen: dict[str, tuple[list[Message], str]] = {}
    for pair in filter(None, map(split_prompt, conversations)):
        seen.setdefault(json.dumps(pair[0], sort_keys=True, ensure_ascii=False), pair)
    return list(seen.values())


def _sample(pairs: list, n: int, seed: int) -> list:
    """``n`` of ``pairs`` chosen at random (seeded), kept in their order."""
    if len(pairs) <= n:
        return pairs
    chosen = sorted(random.Random(seed).sample(range(len(pairs)), n))
    return [pairs[i] for i in chosen]


def eval_set(
    run_dir: Path, n: int | None = None, *, everything: bool = False, seed: int = 0
) -> EvalSet:
    """The held-out prompts the run kept, each once, at most ``n`` (default 50) at random.

    A run without a held-out split is evaluated on the dataset's rows, which it
    trained on; the source says so. Fewer than :data:`MIN_MEANINGFUL` prompts
    get a note that the scores mean little.
    """
    from engine.train.dataset import load_eval_split

    held_out = load_eval_split(run_dir)
    pairs = _distinct(held_out or _dataset_conversations(run_dir))
    if not pairs:
        raise UserError(
            _("no eval row has an assistant answer to compare with"),
            hint=_("Check the dataset with `stillroom inspect`."),
        )
    limit = len(pairs) if everything else (n or DEFAULT_N)
    chosen = _sample(pairs, limit, seed)
    sampled = len(chosen) < len(pairs)
    if held_out and sampled:
        source = _(
            "{chosen} of {total} distinct held-out prompts, chosen at random "
            "(--n sets how many, --all takes every one)"
        )
    elif held_out:
        source = _("all {total} distinct held-out prompts")
    elif sampled:
        source = _(
            "{chosen} of {total} distinct dataset prompts, chosen at random "
            "(--n sets how many, --all takes every one) (no split was held out; the student "
            "trained on them, so scores flatter it)"
        )
    else:
        source = _(
            "all {total} distinct dataset prompts (no split was held out; the student trained "
            "on them, so scores flatter it)"
        )
    source = source.format(chosen=len(chosen), total=len(pairs))
    notes = []
    if len(chosen) < MIN_MEANINGFUL:
        few = (
            _(
                "Only {count} prompt(s): too few for these scores to mean much. Hold out more "
                "rows when training (dataset.eval_fraction, e.g. 0.1), or ask a few questions "
                "of your own in the Chat step."
            )
            if held_out
            else _(
                "Only {count} prompt(s): too few for these scores to mean much. Hold out more "
                "rows when training (dataset.eval_fraction, e.g. 0.1)."
            )
        )
        notes.append(few.format(count=len(chosen)))
    return EvalSet(chosen, source, notes)


def _dataset_conversations(run_dir: Path) -> list[Conversation]:
    from engine.data.formats import detect, normalise
    from engine.data.load import read_table
    from engine.plan import load_plan
    from engine.runs import PLAN_FILE

    d = load_plan(run_dir / PLAN_FILE).dataset
    table = read_table(d.source, d.split)
    conversations, _ = normalise(table, detect(table, d.format, d.mapping or None))
    return conversations


def answer_budget(references: list[int], asked: int | None) -> tuple[int, str]:
    """Tokens each answer may take, and why: enough for the teacher's longest answer.

    A base model that never stops costs the whole budget on every prompt, so the
    budget follows the references (1.5x the longest) instead of chat's 1,024.
    """
    if asked:
        return asked, _("as asked")
    longest = max(references, default=0)
    budget = min(DEFAULT_MAX_NEW_TOKENS, max(MIN_BUDGET, math.ceil(longest * BUDGET_FACTOR)))
    return budget, _("{factor:g}x the longest teacher answer ({longest} tokens)").format(
        factor=BUDGET_FACTOR, longest=longest
    )


def progress_events(emit: Callable[[ev.Event], None], job: str) -> ProgressCallback:
    """:func:`evaluate`'s ``progress`` callback as ``progress`` events, each stage timed
    from its own start so its ETA means that stage's time to go."""
    began: dict[str, float] = {}

    def progress(done: int, total: int, stage: str) -> None:
        now = time.monotonic()
        elapsed = now - began.setdefault(stage, now)
        eta = elapsed / done * (total - done) if done else None
        emit(ev.Progress(job=job, stage=stage, done=done, total=total,
                         elapsed_s=elapsed, eta_s=eta))  # fmt: skip

    return progress


def evaluate(
    run_dir: str | Path,
    *,
    n: int | None = None,
    everything: bool = False,
    judge: bool = False,
    max_new_tokens: int | None = None,
    retention: bool = True,
    progress: ProgressCallback = lambda done, total, stage: None,
) -> dict[str, Any]:
    """Answer the eval prompts with base and student, score them, write ``eval/report.*``.

    ``progress(done, total, stage)`` follows each stage in answers: "recall" (the base's, then
    the student's), then the retention ones.
    """
    from engine.chat import load_student

    run_dir = Path(run_dir)
    chosen = eval_set(run_dir, n, everything=everything)
    if retention:  # a bad eval.control file fails before any model loads
        from engine.plan import load_plan
        from engine.retention import retention_prompts
        from engine.runs import PLAN_FILE

        retention_prompts(load_plan(run_dir / PLAN_FILE).eval.control)
    student = load_student(run_dir)
    lengths = [
        len(student.tokenizer(reference, add_special_tokens=False)["input_ids"])
        for _, reference in chosen.pairs
    ]
    budget, why = answer_budget(lengths, max_new_tokens)
    asked = [messages for messages, _ in chosen.pairs]
    total = len(asked) * len(MODELS)
    by_model = {}
    for i, model in enumerate(MODELS):
        before = i * len(asked)
        by_model[model] = student.answer_all(
            asked,
            base=model == "base",
            max_new_tokens=budget,
            progress=lambda done, before=before: progress(before + done, total, "recall"),
        )
    items = []
    for n, (messages, reference) in enumerate(chosen.pairs):
        answers = {}
        for model in MODELS:
            answer = by_model[model][n]
            answers[model] = {
                "text": answer.text,
                "tokens": answer.tokens,
                "cut": answer.cut,
                "ended_cleanly": answer.ended_cleanly,
                "f1": token_f1(answer.text, reference),
                "rouge_l": rouge_l(answer.text, reference),
            }
        items.append(EvalItem(messages, reference, answers))
    notes = list(chosen.notes)
    if judge:
        notes += judge_items(student.plan.teacher, items)
    report = {
        "run": run_dir.name,
        "source": chosen.source,
        "rows": len(items),
        "max_new_tokens": budget,
        "budget_reason": why,
        "backend": student.backend,
        "metrics": {model: summarise(items, model) for model in MODELS},
        "notes": notes,
        "items": [item.__dict__ for item in items],
    }
    report["learned"] = {"items": learned(report), "of": len(items), "rule": learned_rule()}
    if retention:
        from engine.retention import measure

        report["retention"] = measure(student, progress=progress)
    write_report(run_dir, report)
    return report


def learned(report: dict[str, Any]) -> int:
    """How many eval items the student learned (see :data:`LEARNED_RULE`)."""
    return sum(1 for item in report["items"] if item["answers"]["student"]["f1"] >= LEARNED_F1)


def headline(report: dict[str, Any]) -> str:
    """ "learned X of Y, kept K of N": what the student gained and what it kept."""
    kept = report.get("retention")
    if kept and kept["prompts"]:
        return _("learned {learned} of {rows}, kept {kept} of {prompts}").format(
            learned=learned(report), rows=report["rows"], kept=kept["kept"], prompts=kept["prompts"]
        )
    return _("learned {learned} of {rows}").format(learned=learned(report), rows=report["rows"])


def last_headline(run_dir: str | Path) -> str | None:
    """The headline of the run's last evaluation (``eval/report.json``), or None without one
    (or with one that cannot be read: a list of runs shows the rest regardless)."""
    try:
        report = json.loads((Path(run_dir) / EVAL_DIR / "report.json").read_text(encoding="utf-8"))
        return headline(report)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def retention_lines(report: dict[str, Any]) -> list[str]:
    """The retention section as sentences: counts, what was left out, forgetting and its fix."""
    from engine.retention import FORGETTING_ADVICE

    kept = report.get("retention")
    if not kept:
        return []
    if not kept["prompts"]:
        return [
            _("Retention: the base model answered no control prompt right, so nothing to keep.")
        ]
    lines = [
        _(
            "Retention: the student kept {kept} of {prompts} general answers ({share:.0%}) the "
            "base model gave; {left_out} control prompt(s) the base got wrong were left out."
        ).format(
            kept=kept["kept"],
            prompts=kept["prompts"],
            share=kept["share"],
            left_out=kept["left_out"],
        )
    ]
    if kept["forgetting"]:
        lines.append(
            _("Forgetting: below {threshold:.0%} kept. {advice}").format(
                threshold=kept["threshold"], advice=_(FORGETTING_ADVICE)
            )
        )
    return lines


def summarise(items: list[EvalItem], model: str) -> dict[str, float | None]:
    """Means over the items of one model's answers."""
    answers = [item.answers[model] for item in items]

    def mean(key: str) -> float | None:
        values = [float(a[key]) for a in answers if a.get(key) is not None]
        return round(sum(values) / len(values), 4) if values else None

    return {
        "token_f1": mean("f1"),
        "rouge_l": mean("rouge_l"),
        "answer_tokens": mean("tokens"),
        "cut_share": mean("cut"),
        "clean_end_share": mean("ended_cleanly"),
        "judge_score": mean("judge"),
    }


JUDGE_PROMPT = """You grade answers to a question against a reference answer.
Question:
{question}

Reference answer:
{reference}

Answer A:
{a}

Answer B:
{b}

Score each answer from 1 (wrong or useless) to 10 (as good as the reference).
Reply with JSON only: {{"A": <score>, "B": <score>}}"""


def judge_items(teacher: Any, items: list[EvalItem], seed: int = 0) -> list[str]:
    """The teacher grades base and student blind, in a random order per item."""
    from engine.chat import ask_teacher

    shuffle = random.Random(seed)
    unreadable = 0
    for item in items:
        order = list(MODELS)
        shuffle.shuffle(order)
        prompt = JUDGE_PROMPT.format(
            question=item.messages[-1]["content"],
            reference=item.reference,
            a=item.answers[order[0]]["text"],
            b=item.answers[order[1]]["text"],
        )
        reply = ask_teacher(
            teacher, [{"role": "user", "content": prompt}], "You are a fair grader."
        )
        if reply.note:
            return [f"judge: {reply.note}"]
        scores = parse_scores(reply.text)
        if scores is None:
            unreadable += 1
            continue
        for label, model in zip("AB", order, strict=True):
            item.answers[model]["judge"] = scores[label]
    return [f"judge: {unreadable} grade(s) could not be read"] if unreadable else []


def parse_scores(text: str) -> dict[str, float] | None:
    """``{"A": 7, "B": 3}`` from the judge's reply, tolerating text around the JSON."""
    match = re.search(r"\{[^{}]*\}", text)
    try:
        data = json.loads(match.group(0)) if match else None
        return {label: float(data[label]) for label in "AB"}
    except (ValueError, TypeError, KeyError):
        return None


def write_report(run_dir: Path, report: dict[str, Any]) -> None:
    folder = Path(run_dir) / EVAL_DIR
    atomic_write_text(folder / "report.json", json.dumps(report, indent=2, ensure_ascii=False))
    atomic_write_text(folder / "report.md", render_markdown(report))


_MODEL_NAMES = {"base": N_("base"), "student": N_("student")}
_ROWS = (  # labels translated where shown
    (N_("token F1 vs teacher"), "token_f1", "{:.3f}"),
    (N_("ROUGE-L vs teacher"), "rouge_l", "{:.3f}"),
    (N_("answer length (tokens)"), "answer_tokens", "{:.1f}"),
    (N_("cut by the token budget"), "cut_share", "{:.0%}"),
    (N_("ended cleanly at end-of-turn"), "clean_end_share", "{:.0%}"),
    (N_("judged by the teacher (1-10)"), "judge_score", "{:.1f}"),
)


def metric_lines(report: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, base, student) rows, formatted, for the markdown and the CLI summary."""
    metrics = report["metrics"]
    rows = []
    for label, key, shape in _ROWS:
        values = [metrics[model].get(key) for model in MODELS]
        if all(v is None for v in values):
            continue
        rows.append((_(label), *("-" if v is None else shape.format(v) for v in values)))
    return rows


def render_markdown(report: dict[str, Any]) -> str:
    """The report a person reads: the metrics table, notes, then a few side-by-side examples."""
    rule = (
        _("**{headline}** ({rule}; kept = retention, below).")
        if report.get("retention")
        else _("**{headline}** ({rule}).")
    )
    lines = [
        _("# Evaluation of {run}").format(run=report["run"]),
        "",
        rule.format(headline=headline(report).capitalize(), rule=learned_rule()),
        "",
        _(
            "{source}; greedy answers, at most {max_new_tokens} new tokens ({budget_reason}); "
            "scores compare each answer with the teacher's."
        ).format(
            source=report["source"].capitalize(),
            max_new_tokens=report["max_new_tokens"],
            budget_reason=report.get("budget_reason") or _("as asked"),
        ),
        "",
        _("| metric | base | student |"),
        "|---|---|---|",
        *(f"| {label} | {base} | {student} |" for label, base, student in metric_lines(report)),
        "",
    ]
    lines += [f"- {note}" for note in report["notes"]]
    lines += _retention_markdown(report)
    lines += [_("## Examples"), ""]
    for n, item in enumerate(report["items"][:EXAMPLES_SHOWN], 1):
        lines += [f"### {n}. {_quote(item['messages'][-1]['content'])}", ""]
        lines += [_("- **teacher**: {answer}").format(answer=_quote(item["reference"]))]
        for model in MODELS:
            answer = item["answers"][model]
            line = (
                _("- **{model}** (F1 {f1:.2f}) *(cut)*: {answer}")
                if answer["cut"]
                else _("- **{model}** (F1 {f1:.2f}): {answer}")
            )
            lines += [
                line.format(
                    model=_(_MODEL_NAMES[model]), f1=answer["f1"], answer=_quote(answer["text"])
                )
            ]
        lines.append("")
    return "\n".join(lines)


def _retention_markdown(report: dict[str, Any]) -> list[str]:
    """Retention: the counts, the rule, and the answers that changed most."""
    kept = report.get("retention")
    if not kept:
        return []
    rule = _("Rule: {rule}.").format(rule=kept["rule"])
    lines = ["", _("## Retention"), "", *retention_lines(report), "", rule, ""]
    if kept["changed"]:
        lines += [_("| prompt | base | student | F1 to base | kept |"), "|---|---|---|---|---|"]
        for row in kept["changed"]:
            cells = [_quote(row[k], 120).replace("|", "\\|") for k in ("prompt", "base", "student")]
            lines.append(
                f"| {' | '.join(cells)} | {row['score']:.2f} | {_('yes') if row['kept'] else _('no')} |"
            )
        lines.append("")
    return lines


def _quote(text: str, limit: int = 400) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + " …"
