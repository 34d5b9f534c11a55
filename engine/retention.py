"""Did the student forget? Control prompts it never trained on, answered by base and student.

Distillation buys new knowledge with old: a student that recalls every invented
fact may now place Paris in Saint-Germain. The control set below is general
knowledge with one checkable key fact each, simple arithmetic and instruction
following, in English and Chinese, plus a few open prompts without a key fact.

Scoring, per prompt:

- with key facts (any of them, case-insensitive, whole words for Latin letters
  and digits): it counts only where the base model's answer has one, since a
  fact the base never knew cannot be forgotten (those are *left out*, and
  counted); it is *kept* when the student's answer still has one;
- without: *kept* when the student's answer stays similar to the base's, token
  F1 of at least :data:`SIMILAR` (words, so these prompts are English only: a
  Chinese sentence has no spaces and would count as one word).

The set is split in two halves with nothing in common: retention scores the
student on :data:`RETENTION_HALF` (plus the plan's ``eval.control`` file), and
replay (:mod:`engine.replay`) trains on the base's answers to :data:`REPLAY_HALF`,
so no prompt the student trained on is ever scored as kept.

The base answers are cached per base model and prompt in Stillroom's cache
folder, so a second evaluation only runs the student, and the student is asked
only the prompts that count. Pure Python apart from the student, which arrives
through :mod:`engine.chat`.

The set is written for any base model; a small one gets many wrong (SmolLM2-135M
counts 49 of the retention half's 64, and answers Chinese with noise): those are
left out and the report says how many.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.evaluate import token_f1
from engine.fileio import atomic_write_text
from engine.i18n import N_, _

BUDGET = 48  # greedy tokens per answer: room for a short fact, cheap on a CPU
KEPT_SHARE = 0.9  # below this share of kept answers the report flags forgetting
SIMILAR = 0.3  # token F1 to the base's answer at which an open answer counts as kept
CHANGED_SHOWN = 5
CACHE_FOLDER = "retention"


@dataclass(frozen=True)
class ControlPrompt:
    """A prompt and the key facts a right answer contains (any one of them), or none."""

    prompt: str
    facts: tuple[str, ...] = ()


def _p(prompt: str, *facts: str) -> ControlPrompt:
    return ControlPrompt(prompt, facts)


CONTROL_SET: tuple[ControlPrompt, ...] = (
    # general knowledge, English
    _p("What is the capital of France?", "Paris"),
    _p("What is the capital of Japan?", "Tokyo"),
    _p("What is the capital of Italy?", "Rome"),
    _p("What is the capital of Germany?", "Berlin"),
    _p("What is the capital of Spain?", "Madrid"),
    _p("How many days are in a week?", "7", "seven"),
    _p("How many legs does a dog have?", "4", "four"),
    _p("What color is the sky on a clear day?", "blue"),
    _p("What is the largest ocean on Earth?", "Pacific"),
    _p("Which planet is known as the Red Planet?", "Mars"),
    _p("What gas do plants take in from the air?", "carbon dioxide", "CO2"),
    _p("What is frozen water called?", "ice"),
    _p("Who wrote Romeo and Juliet?", "Shakespeare"),
    _p("What is the chemical symbol for gold?", "Au"),
    _p("Which animal is known as the king of the jungle?", "lion"),
    _p("How many months are in a year?", "12", "twelve"),
    _p("What is the opposite of hot?", "cold"),
    _p("What do bees make?", "honey"),
    _p("Which star is at the centre of our solar system?", "Sun"),
    _p("In which continent is Egypt?", "Africa"),
    _p("What is the capital of England?", "London"),
    _p("What is the capital of Russia?", "Moscow"),
    _p("What is the capital of China?", "Beijing"),
    _p("What is the capital of Canada?", "Ottawa"),
    _p("What is the capital of Egypt?", "Cairo"),
    _p("What is the capital of Greece?", "Athens"),
    _p("What is the capital of Ireland?", "Dublin"),
    _p("What is the capital of Austria?", "Vienna"),
    _p("What is the capital of South Korea?", "Seoul"),
    _p("What is the capital of Australia?", "Canberra"),
    _p("What is the capital of India?", "Delhi"),
    _p("How many hours are in a day?", "24", "twenty-four"),
    _p("How many seconds are in a minute?", "60", "sixty"),
    _p("How many sides does a triangle have?", "3", "three"),
    _p("What is the boiling point of water in degrees Celsius?", "100"),
    _p("What is the chemical formula of water?", "H2O"),
    _p("What is the chemical symbol for oxygen?", "O"),
    _p("What gas do humans need to breathe?", "oxygen"),
    _p("What is the main gas in the air we breathe?", "nitrogen"),
    _p("What is the tallest mountain in the world?", "Everest"),
    _p("What is the longest river in Africa?", "Nile"),
    _p("What is the largest desert in Africa?", "Sahara"),
    _p("Who painted the Mona Lisa?", "Leonardo", "Vinci"),
    _p("Who developed the theory of relativity?", "Einstein"),
    _p("Who discovered penicillin?", "Fleming"),
    _p("What is the largest mammal?", "whale"),
    _p("What color is snow?", "white"),
    _p("What color are leaves in summer?", "green"),
    _p("What is the main language spoken in Brazil?", "Portuguese"),
    _p("What language is spoken in France?", "French"),
    _p("What language is spoken in Germany?", "German"),
    _p("What is the currency of Japan?", "yen"),
    _p("What is the currency of the United Kingdom?", "pound"),
    _p("In which country are the pyramids of Giza?", "Egypt"),
    _p("In which city is the Eiffel Tower?", "Paris"),
    _p("In which country is the Great Wall?", "China"),
    _p("Which organ pumps blood through the body?", "heart"),
    _p("Which organ do humans use to think?", "brain"),
    _p("What do plants need from the Sun to grow?", "light", "sunlight"),
    _p("What force pulls objects toward the Earth?", "gravity"),
    _p("What instrument has black and white keys?", "piano"),
    _p("What does a thermometer measure?", "temperature"),
    _p("What is the opposite of day?", "night"),
    _p("What is the opposite of big?", "small", "little"),
    _p("What is the opposite of fast?", "slow"),
    _p("What is the first month of the year?", "January"),
    _p("What is the last month of the year?", "December"),
    _p("What is the plural of mouse?", "mice"),
    # arithmetic
    _p("What is 2 plus 2?", "4", "four"),
    _p("What is 5 times 3?", "15", "fifteen"),
    _p("What is 10 minus 4?", "6", "six"),
    _p("What is 9 plus 1?", "10", "ten"),
    _p("What is 20 divided by 5?", "4", "four"),
    _p("What is 7 times 8?", "56"),
    _p("What is 100 minus 1?", "99"),
    _p("What is half of 50?", "25"),
    _p("What is 1 plus 1?", "2", "two"),
    _p("What is 10 plus 10?", "20", "twenty"),
    _p("What is 2 times 3?", "6", "six"),
    _p("What is 2 times 5?", "10", "ten"),
    _p("What is 3 times 3?", "9", "nine"),
    _p("What is 1 plus 2?", "3", "three"),
    # instruction following
    _p("Answer in one word: what color is grass?", "green"),
    _p("Answer with a number only: how many hours are in a day?", "24"),
    _p("Answer yes or no: is the Sun a star?", "yes"),
    _p("Answer in one word: what is the opposite of up?", "down"),
    _p("Repeat exactly this word: banana", "banana"),
    _p("Write the word 'hello' in capital letters.", "HELLO"),
    _p("Answer in one word: what animal says 'moo'?", "cow"),
    _p("Translate 'thank you' into French.", "merci"),
    _p("Spell the number 3 as a word.", "three"),
    _p("Answer in one word: what is the first day of the week after Sunday?", "Monday"),
    _p("Answer in one word: what do bees make?", "honey"),
    _p("Answer in one word: what is the capital of France?", "Paris"),
    _p("Answer in one word: what is the opposite of left?", "right"),
    _p("Answer with a number only: what is 3 plus 2?", "5"),
    _p("Answer yes or no: is fire cold?", "no"),
    _p("Repeat exactly this word: window", "window"),
    _p("Repeat exactly this sentence: The cat sat on the mat.", "cat sat on the mat"),
    _p("Complete the sentence: One, two, three, ...", "four", "4"),
    _p("List the three primary colors.", "red"),
    _p("Translate 'hello' into Spanish.", "hola"),
    # Chinese, each with a key fact
    _p("法国的首都是哪里？", "巴黎", "Paris"),
    _p("中国的首都是哪里？", "北京", "Beijing"),
    _p("一周有几天？", "7", "七"),
    _p("2加3等于几？", "5", "五"),
    _p("天空在晴天是什么颜色？", "蓝"),
    _p("一年有几个月？", "12", "十二"),
    _p("水在零度以下会变成什么？", "冰"),
    _p("太阳从哪个方向升起？", "东"),
    _p("用一个词回答：猫是什么动物？", "动物", "哺乳", "宠物"),
    _p("10减去3等于多少？", "7", "七"),
    _p("请用一个字回答：雪是什么颜色？", "白"),
    _p("地球上最大的海洋是什么？", "太平洋"),
    _p("1加1等于几？", "2", "二", "两"),
    _p("用一个词回答：狗会叫吗？", "会", "yes"),
    _p("Translate 'water' into Chinese.", "水"),
    _p("日本的首都是哪里？", "东京", "Tokyo"),
    # open prompts: kept when the student's answer stays close to the base's
    _p("Give one tip for sleeping better."),
    _p("Describe the sea in one sentence."),
    _p("What is a good way to start learning to cook?"),
    _p("Write a short greeting for a friend's birthday."),
    _p("Why do people drink water?"),
    _p("Explain what a computer is in one sentence."),
    _p("Suggest a name for a pet cat."),
    _p("What is a healthy breakfast?"),
    _p("Why is exercise good for you?"),
    _p("Say something kind to someone who is tired."),
)

# Alternate prompts, so each half has every kind (facts, arithmetic, instructions, Chinese, open).
RETENTION_HALF = CONTROL_SET[0::2]
REPLAY_HALF = CONTROL_SET[1::2]


def read_control_file(path: str | Path) -> tuple[ControlPrompt, ...]:
    """A user's control prompts: text with one prompt a line, or JSONL lines of
    ``{"prompt": ..., "facts": [...]}`` (``facts`` optional: without, the answer is compared
    with the base's)."""
    path = Path(path).expanduser()
    fix = _("Write one prompt a line, or JSONL lines like {example}.").format(
        example='{"prompt": "...", "facts": ["..."]}'
    )
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(
            _("{path}: cannot read the control prompts ({error})").format(path=path, error=error),
            fix,
        ) from None
    prompts = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        if not line.startswith("{"):
            prompts.append(ControlPrompt(line))
            continue
        try:
            record = json.loads(line)
            facts = record.get("facts", [])
            prompt = ControlPrompt(str(record["prompt"]), tuple(str(f) for f in facts))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise UserError(
                _("{path}, line {number}: not a control prompt: {line}").format(
                    path=path, number=number, line=line[:80]
                ),
                fix,
            ) from None
        if not prompt.prompt.strip() or any(not f.strip() for f in prompt.facts):
            raise UserError(
                _("{path}, line {number}: an empty prompt or key fact").format(
                    path=path, number=number
                ),
                fix,
            )
        prompts.append(prompt)
    if not prompts:
        raise UserError(_("{path}: no control prompts in it").format(path=path), fix)
    return tuple(prompts)


def retention_prompts(control: str = "") -> tuple[ControlPrompt, ...]:
    """What retention scores: the built-in set's retention half, then the user's file, if any."""
    return RETENTION_HALF + (read_control_file(control) if control else ())


def has_fact(answer: str, facts: tuple[str, ...]) -> bool:
    """Whether ``answer`` contains any of ``facts``: case-insensitive, and a fact that starts
    or ends with a Latin letter or digit must stand as a whole word there ("4" is not in "14")."""
    for fact in facts:
        left = r"(?<![A-Za-z0-9])" if fact[:1].isascii() and fact[:1].isalnum() else ""
        right = r"(?![A-Za-z0-9])" if fact[-1:].isascii() and fact[-1:].isalnum() else ""
        if re.search(left + re.escape(fact) + right, answer, re.IGNORECASE):
            return True
    return False


@dataclass(frozen=True)
class Score:
    """How one control prompt fared: ``kept`` is None where the base never knew the fact."""

    kept: bool | None
    similarity: float  # token F1 of the student's answer against the base's


def counts(control: ControlPrompt, base: str) -> bool:
    """Whether a prompt can measure forgetting: an open one always, one with key facts only
    where the base model's answer has one."""
    return not control.facts or has_fact(base, control.facts)


def score(control: ControlPrompt, base: str, student: str) -> Score:
    """The retention rule for one prompt (see the module docstring)."""
    similarity = round(token_f1(student, base), 4)
    if not counts(control, base):
        return Score(None, similarity)
    if control.facts:
        return Score(has_fact(student, control.facts), similarity)
    return Score(similarity >= SIMILAR, similarity)


def cache_key(model: str, options: dict[str, Any], budget: int) -> str:
    """A hash of the base model (id, or resolved folder), how it loads, and the budget: one file
    holds its answers to every prompt it was asked, whichever set asked it."""
    local = Path(model).expanduser()
    identity = str(local.resolve()) if local.exists() else model
    payload = json.dumps(
        {"model": identity, "options": options, "budget": budget},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def cache_file(key: str) -> Path:
    """Where one base model's answers are kept: ``default_cache_dir()/retention/KEY.json``."""
    from engine.demo_student import default_cache_dir

    return default_cache_dir() / CACHE_FOLDER / f"{key}.json"


def read_cache(path: Path) -> dict[str, str]:
    """The cached base answers by prompt; empty when absent, unreadable or of another shape."""
    try:
        answers = json.loads(path.read_text(encoding="utf-8"))["answers"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    if not isinstance(answers, dict):
        return {}
    return {str(prompt): str(answer) for prompt, answer in answers.items()}


Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class BaseAnswers:
    """The base model's answers to a prompt set, whether all came from the cache, and where
    they are kept (None when the cache could not be written)."""

    answers: list[str]
    cached: bool
    cache: Path | None


def base_answers(
    plan: Any,
    backend: str,
    prompts: tuple[ControlPrompt, ...],
    budget: int,
    answer: Callable[[tuple[ControlPrompt, ...]], list[str]],
) -> BaseAnswers:
    """The base model's answers to ``prompts``, cached per base model and prompt;
    ``answer(missing)`` writes those not yet cached (so a caller loads the model only then)."""
    options = {"backend": backend, "4bit": plan.student.load_in_4bit}
    path = cache_file(cache_key(plan.student.model, options, budget))
    known = read_cache(path)
    missing = tuple({c.prompt: c for c in prompts if c.prompt not in known}.values())
    if not missing:
        return BaseAnswers([known[c.prompt] for c in prompts], True, path)
    known.update(zip((c.prompt for c in missing), answer(missing), strict=True))
    answers = [known[c.prompt] for c in prompts]
    record = {"model": plan.student.model, "budget": budget, "answers": known}
    try:
        atomic_write_text(path, json.dumps(record, ensure_ascii=False, indent=1))
    except OSError:  # a read-only cache costs the next run time, never this one
        return BaseAnswers(answers, False, None)
    return BaseAnswers(answers, False, path)


def measure(
    student: Any,
    *,
    budget: int = BUDGET,
    progress: Progress = lambda done, total, stage: None,
) -> dict[str, Any]:
    """The ``retention`` section of the report: base answers (cached), then the student's to
    the prompts that count (a fact the base never knew is not asked again)."""
    prompts = retention_prompts(student.plan.eval.control)
    base = base_answers(
        student.plan,
        student.backend,
        prompts,
        budget,
        lambda missing: answer_control_set(
            student, True, budget, lambda d, t: progress(d, t, "retention, base"), missing
        ),
    )
    counted = tuple(c for c, a in zip(prompts, base.answers, strict=True) if counts(c, a))
    asked = answer_control_set(
        student, False, budget, lambda d, t: progress(d, t, "retention, student"), counted
    )
    by_prompt = dict(zip((c.prompt for c in counted), asked, strict=True))
    answers = [by_prompt.get(c.prompt, "") for c in prompts]
    where = str(base.cache) if base.cache else None
    return summarise(base.answers, answers, prompts) | {
        "budget": budget,
        "base_cached": base.cached,
        "cache": where,
        "control_file": student.plan.eval.control or None,
    }


def answer_control_set(
    student: Any,
    base: bool,
    budget: int = BUDGET,
    progress: Callable[[int, int], None] = lambda done, total: None,
    prompts: tuple[ControlPrompt, ...] = RETENTION_HALF,
) -> list[str]:
    """Greedy answers to every prompt, by the base model (adapter off) or the student."""
    answers = student.answer_all(
        [[{"role": "user", "content": control.prompt}] for control in prompts],
        base=base,
        max_new_tokens=budget,
        progress=lambda done: progress(done, len(prompts)),
    )
    return [answer.text for answer in answers]


def summarise(
    base: list[str], student: list[str], prompts: tuple[ControlPrompt, ...] = RETENTION_HALF
) -> dict[str, Any]:
    """Counts, share, the answers that changed most, and whether that is forgetting."""
    rows = []
    for control, before, after in zip(prompts, base, student, strict=True):
        rows.append((control, before, after, score(control, before, after)))
    scored = [row for row in rows if row[3].kept is not None]
    kept = sum(1 for row in scored if row[3].kept)
    share = round(kept / len(scored), 4) if scored else None
    changed = sorted(
        (row for row in scored if row[3].similarity < 1.0),
        key=lambda row: (bool(row[3].kept), row[3].similarity),
    )
    return {
        "prompts": len(scored),
        "kept": kept,
        "share": share,
        "left_out": len(rows) - len(scored),
        "changed": [
            {
                "prompt": c.prompt,
                "base": before,
                "student": after,
                "score": s.similarity,
                "kept": s.kept,
            }  # fmt: skip
            for c, before, after, s in changed[:CHANGED_SHOWN]
        ],
        "forgetting": share is not None and share < KEPT_SHARE,
        "threshold": KEPT_SHARE,
        "rule": _(RULE).format(similar=SIMILAR, kept_share=KEPT_SHARE),
    }


RULE = N_(
    "a prompt with a key fact counts where the base model's answer has it and is kept where "
    "the student's still does; an open prompt is kept where the student's answer has token F1 "
    ">= {similar} against the base's; forgetting is flagged below {kept_share:.0%} kept"
)

FORGETTING_ADVICE = N_(
    "The student is forgetting what the base model knew: train with fewer epochs "
    "(or fewer steps) or a lower learning rate, with replay on (dataset.replay_fraction, "
    "e.g. 0.2), then evaluate again."
)
