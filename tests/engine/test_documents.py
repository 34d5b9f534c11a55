"""The teacher reads documents: real files, the real ``openai`` client, a loopback teacher."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from engine.errors import UserError
from engine.plan import TeacherPlan
from engine.teacher.documents.job import estimate, read_corpus
from engine.teacher.generate import questions_path, run
from tests.documents import DOCX_FACT, HTML_FACT, MD_FACT, PDF_FACTS, ZH_FACT, write_folder
from tests.teacher_server import TeacherServer

KEY_VAR = "STILLROOM_TEST_TEACHER_KEY"


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    return write_folder(tmp_path_factory.mktemp("library") / "docs")


@pytest.fixture
def server():
    with TeacherServer() as server:
        yield server


@pytest.fixture
def make(tmp_path, server, monkeypatch, library):
    monkeypatch.setenv(KEY_VAR, server.api_key)

    def make(documents: list[str] | None = None, **changes) -> TeacherPlan:
        values = {
            "provider": "custom",
            "base_url": server.base_url,
            "model": "teacher-1",
            "api_key_env": KEY_VAR,
            "documents": documents or [str(library)],
            "output": str(tmp_path / "out.jsonl"),
            "concurrency": 4,
            "chunk_tokens": 300,
            "questions_per_chunk": 3,
            "retry_base_s": 0.02,
            "retry_max_s": 0.1,
            "max_retries": 2,
            **changes,
        }
        return TeacherPlan(**values)

    return make


def records(teacher: TeacherPlan) -> list[dict]:
    with open(teacher.output, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def keys(teacher: TeacherPlan) -> Counter:
    return Counter(
        (r["meta"]["source"]["chunk_hash"], r["messages"][1]["content"]) for r in records(teacher)
    )


def by_name(corpus, name: str):
    return [c for c in corpus.chunks if Path(c.file).name == name]


def test_each_kind_of_document_is_chunked_under_its_heading_path(make):
    corpus = read_corpus(make())
    pdf = by_name(corpus, "manual.pdf")
    assert {(c.path, c.page) for c in pdf} == {
        (("Espresso Machine Manual", "Operation"), 1),
        (("Espresso Machine Manual", "Maintenance"), 2),
    }
    assert all(PDF_FACTS[c.page - 1] in c.text for c in pdf)
    (docx,) = by_name(corpus, "policy.docx")
    assert docx.path == ("Customer Policy", "Returns", "Refunds") and DOCX_FACT in docx.text
    (md,) = by_name(corpus, "grinder.md")
    assert md.path == ("Grinder Guide", "Burrs", "Replacement") and MD_FACT in md.text
    (html,) = by_name(corpus, "milk.html")
    assert html.path == ("Milk Handbook", "Steaming") and HTML_FACT in html.text
    assert "var x" not in html.text  # scripts are not text
    assert corpus.pages == 2


def test_chinese_text_is_cut_between_sentences_within_the_size(make):
    chunks = by_name(read_corpus(make(chunk_tokens=200)), "蒸馏.txt")
    assert len(chunks) > 2
    for chunk in chunks:
        assert chunk.tokens <= 200
        sentences = chunk.text.replace("\n", "")
        assert sentences.startswith("第") and sentences.endswith(ZH_FACT[-4:])


def test_long_sections_are_cut_within_the_size_with_a_little_overlap(make, tmp_path):
    paragraphs = [
        f"Step {i}: the valve number {i} is opened for {i} seconds. " * 6 for i in range(40)
    ]
    (tmp_path / "long.md").write_text("# Valves\n\n" + "\n\n".join(paragraphs))
    chunks = read_corpus(make([str(tmp_path / "long.md")], chunk_tokens=200)).chunks
    assert len(chunks) > 5 and all(c.tokens <= 200 for c in chunks)
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.text[:40] in before.text  # each starts inside the one before: the overlap
    sentences = {f"Step {i}: the valve number {i} is opened for {i} seconds." for i in range(40)}
    assert all(any(s in c.text for c in chunks) for s in sentences)  # nothing lost


def test_a_scanned_pdf_and_an_unknown_file_are_reported_with_the_reason(make):
    skipped = {Path(s.file).name: s for s in read_corpus(make()).skipped}
    assert set(skipped) == {"warranty-scan.pdf", "photo.png"}
    scan = skipped["warranty-scan.pdf"]
    assert scan.scanned and "scanned" in scan.reason and "OCR" in scan.reason
    assert ".png" in skipped["photo.png"].reason


def test_a_one_word_document_is_reported_as_too_little_text(make, tmp_path):
    """Not "no files found": the file was found, and the message says what is wrong with it."""
    one = tmp_path / "one.md"
    one.write_text("Hello\n")
    with pytest.raises(UserError) as raised:
        read_corpus(make([str(one)]))
    assert "one.md: has too little text" in str(raised.value)
    assert "no files found" not in str(raised.value)


def test_every_record_cites_its_source_and_answers_from_its_chunk(make, server):
    teacher = make()
    summary = run(teacher, lambda event: None)
    assert summary.complete and summary.total == len(records(teacher)) > 10
    asks = [r for r in server.requests if "<excerpt>" in r["user"]]
    assert asks and all(r["body"]["response_format"] == {"type": "json_object"} for r in asks)
    chunks = {c.hash: c for c in read_corpus(teacher).chunks}
    for record in records(teacher):
        source = record["meta"]["source"]
        chunk = chunks[source["chunk_hash"]]
        assert source["file"] == chunk.file and source["section"] == " > ".join(chunk.path)
        assert source["chunk"] == chunk.id and source["page"] == chunk.page
        system, question, answer = record["messages"]
        assert question["role"] == "user" and chunk.text not in question["content"]
        assert chunk.text in answer["content"]  # the server echoes what it was asked: the chunk
        assert question["content"] in answer["content"]
    pdf_pages = {
        r["meta"]["source"]["page"]
        for r in records(teacher)
        if "manual" in r["meta"]["source"]["file"]
    }
    assert pdf_pages == {1, 2}
    held = Counter(r["meta"]["source"]["file"] for r in records(teacher) if r["meta"]["heldout"])
    assert held and all(n >= 1 for n in held.values())
    assert sum(keys(teacher).values()) == len(keys(teacher))  # each question once


def test_an_edited_document_pays_only_for_its_changed_chunks(make, server, tmp_path, library):
    folder = tmp_path / "edited"
    folder.mkdir()
    for name in ("grinder.md", "milk.html"):
        (folder / name).write_text((library / "guides" / name).read_text())
    teacher = make([str(folder)])
    assert run(teacher, lambda event: None).complete
    before = keys(teacher)
    asked = len(server.requests)
    grinder = folder / "grinder.md"
    grinder.write_text(grinder.read_text() + "\n## Cleaning\n\nBrush the burrs once a week.\n")
    summary = run(teacher, lambda event: None)
    assert summary.complete
    new = server.requests[asked:]
    questions = [r for r in new if "<excerpt>" in r["user"]]
    assert len(questions) == 1 and "Grinder Guide > Cleaning" in questions[0]["user"]
    assert len(new) == 1 + teacher.questions_per_chunk  # one chunk: its questions, its answers
    assert keys(teacher) - before == Counter({k: 1 for k in set(keys(teacher)) - set(before)})


def test_a_provider_ignoring_response_format_is_read_or_the_chunk_fails(make, server):
    server.fault("prose", match="Section: Grinder Guide")  # JSON inside chatty text
    server.fault("refusal", match="Section: Milk Handbook")  # no JSON at all
    teacher = make()
    summary = run(teacher, lambda event: None)
    assert summary.failed_chunks == 1 and summary.stopped == "incomplete"
    assert not summary.complete
    sections = {r["meta"]["source"]["section"] for r in records(teacher)}
    assert "Grinder Guide > Burrs > Replacement" in sections
    assert not any(s.startswith("Milk Handbook") for s in sections)  # nothing invented
    summary = run(teacher, lambda event: None)  # the server answers again: the chunk is done
    assert summary.complete and sum(keys(teacher).values()) == len(keys(teacher))
    assert any(r["meta"]["source"]["section"].startswith("Milk") for r in records(teacher))


def test_the_budget_stops_cleanly_and_the_next_run_finishes_exactly_once(make, server):
    teacher = make(
        concurrency=1, max_tokens=200, price_input_per_mtok=1e6, price_output_per_mtok=1e6
    )
    summary = run(teacher.model_copy(update={"budget_usd": 4000.0}), lambda event: None)
    assert summary.stopped == "budget" and summary.cost_usd <= 4000
    summary = run(teacher, lambda event: None)
    assert summary.complete
    assert sum(keys(teacher).values()) == len(keys(teacher)) == summary.total
    questions = [json.loads(line)["chunk_hash"] for line in open(questions_path(teacher))]
    assert len(questions) == len(set(questions))  # no chunk's questions bought twice


def test_dry_run_counts_both_stages_without_sending(make, server):
    teacher = make(price_input_per_mtok=1.0, price_output_per_mtok=2.0)
    forecast = estimate(teacher)
    assert (len(forecast.corpus.documents), forecast.corpus.pages) == (5, 2)
    assert forecast.question_requests == len(forecast.corpus.unique_chunks())
    assert forecast.answers_to_send == 3 * forecast.question_requests
    assert 0 < forecast.cost_usd() <= forecast.cost_max_usd
    assert not server.requests
    run(teacher, lambda event: None)
    again = estimate(teacher)
    assert (again.question_requests, again.answers_to_send) == (0, 0)
    assert again.answers_done == again.questions_known > 0


def test_questions_held_out_per_document_are_never_trained_on(make):
    from engine.data.inspect import check_source
    from engine.train.dataset import _split

    teacher = make()
    run(teacher, lambda event: None)
    marked = {r["messages"][1]["content"] for r in records(teacher) if r["meta"]["heldout"]}
    assert marked
    conversations = check_source(teacher.output).usable
    train, held_out = _split(conversations, 0.05, seed=3)
    assert marked <= {c.messages[1]["content"] for c in held_out}
    assert not marked & {c.messages[1]["content"] for c in train}


def test_an_endpoint_refusing_response_format_is_asked_without_it(make, server):
    server.fault("status", status=400, match="<excerpt>", message="response_format: unsupported")
    events = []
    summary = run(make(concurrency=1), events.append)
    assert summary.complete and summary.failed_chunks == 0
    asks = [r["body"] for r in server.requests if "<excerpt>" in r["user"]]
    assert "response_format" in asks[0] and not any("response_format" in b for b in asks[1:])
    assert any(e.type == "log" and "refused response_format" in e.line for e in events)
