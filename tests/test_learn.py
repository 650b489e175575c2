"""Learning from readers: votes, admin examples, the learned model (on the database under test),
`digest classify --feedback`, `digest topics learn|report|check` and the status line."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from digest import clock
from digest.store.db import session_scope
from digest.store.models import Paper, TopicMatch, TopicModel, Vote
from digest.topics.classify import parse_paper
from digest.topics.config import load_topics
from digest.topics.learn import LIKE_RELEVANT, Label, LearnedModel, LearningMatcher, train
from digest.topics.learn_store import learn, learned_matcher, stored_labels
from digest.topics.match import Matcher
from digest.topics.votes import VoteError, record_vote, votes_of
from tests import learn_data
from tests.factories import add_subscriber

TOPICS = Path(__file__).parent / "fixtures" / "learn_topics.yaml"


def _cli(*args, env=None, stdin=None):
    return subprocess.run([sys.executable, "-m", "digest.cli", *args], capture_output=True, text=True, env=env,
                          input=stdin, cwd=Path(__file__).parent.parent)


def _labels():
    return [Label(parse_paper(v["paper"]), v["topic"], v["relevant"]) for v in learn_data.feedback()]


def _assigned(matcher, papers):
    return {p["id"]: sorted(a.topic_id for a in matcher.match(parse_paper(p))) for p in papers}


def test_votes_teach_the_topic_what_readers_do_not_want():
    config = load_topics(TOPICS)
    plain = Matcher(config)
    unseen = learn_data.unseen()
    assert all(v == ["segmentation"] for v in _assigned(plain, unseen).values())  # words alone take both kinds
    labels = _labels()
    model = train(plain, labels)
    assert model is not None and set(model.topics) == {"segmentation"}  # compression has no votes: plain matcher
    learned = LearningMatcher(plain, model, {str(lb.paper.id): lb.paper for lb in labels})
    got = _assigned(learned, unseen)
    assert [got[p["id"]] for p in unseen] == [["segmentation"], ["segmentation"], [], []]
    why = learned.match(parse_paper(unseen[0]))[0].matched
    assert why[0] == LIKE_RELEVANT and "image segmentation" in why
    # a topic without votes is untouched
    q = learn_data.quantization(1)
    assert _assigned(learned, [q]) == _assigned(plain, [q]) == {q["id"]: ["compression"]}
    # stored and loaded: the same decisions
    again = LearningMatcher(plain, LearnedModel.from_json(json.loads(json.dumps(model.to_json()))),
                            {str(lb.paper.id): lb.paper for lb in labels})
    assert _assigned(again, unseen) == got


def test_too_few_votes_keep_the_plain_matcher():
    config = load_topics(TOPICS)
    assert train(Matcher(config), _labels()[:2]) is None


def test_classify_with_feedback_learns_first(tmp_path):
    papers = tmp_path / "papers.jsonl"
    papers.write_text("".join(json.dumps(p) + "\n" for p in learn_data.unseen()), encoding="utf-8")
    votes = tmp_path / "votes.jsonl"
    votes.write_text("".join(json.dumps(v) + "\n" for v in learn_data.feedback()), encoding="utf-8")
    plain = _cli("classify", "--topics", str(TOPICS), "--papers", str(papers))
    assert plain.returncode == 0, plain.stderr
    assert all(json.loads(line)["topics"] for line in plain.stdout.splitlines())
    fed = _cli("classify", "--topics", str(TOPICS), "--papers", str(papers), "--feedback", str(votes))
    assert fed.returncode == 0, fed.stderr
    rows = [json.loads(line) for line in fed.stdout.splitlines()]
    assert [sorted(r) for r in rows] == [["id", "topics"]] * 4  # output format unchanged
    assert [[t["id"] for t in r["topics"]] for r in rows] == [["segmentation"], ["segmentation"], [], []]
    # bad feedback lines: named with their line, the rest still learned from, exit 1
    with votes.open("a", encoding="utf-8") as fh:
        fh.write("{not json\n")
        fh.write(json.dumps({"paper": learn_data.medical(9), "topic": "nope", "relevant": True}) + "\n")
        fh.write(json.dumps({"paper": learn_data.medical(9), "topic": "segmentation", "relevant": "yes"}) + "\n")
    bad = _cli("classify", "--topics", str(TOPICS), "--papers", str(papers), "--feedback", str(votes))
    assert bad.returncode == 1
    assert f"{votes}:13: not valid JSON" in bad.stderr
    assert f"{votes}:14: unknown topic 'nope'" in bad.stderr
    assert f"{votes}:15: 'relevant' must be true or false" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert [[t["id"] for t in json.loads(line)["topics"]] for line in bad.stdout.splitlines()] == \
        [["segmentation"], ["segmentation"], [], []]
    missing = _cli("classify", "--topics", str(TOPICS), "--papers", str(papers), "--feedback", str(tmp_path / "none"))
    assert missing.returncode == 2 and "file not found" in missing.stderr and "Traceback" not in missing.stderr


def _store(session, papers, seen):
    for p in papers:
        session.add(Paper(id=p["id"], arxiv_id=p["id"], title=p["title"], abstract=p["abstract"], authors=p["authors"],
                          categories=p["categories"], primary_category="cs.CV", first_seen_at=seen, updated_at=seen,
                          is_new=True))
    session.flush()


def test_votes_examples_and_models_are_stored_and_reproducible(settings, tmp_path):
    """Votes (changeable, one per subscriber/paper/topic) and admin examples train a versioned
    model; a model trained from the database makes exactly the decisions of one trained in
    memory on the same labels, on SQLite and PostgreSQL alike, and survives a restart."""
    config = load_topics(TOPICS)
    plain = Matcher(config)
    now = clock.now()
    fb = learn_data.feedback()
    with session_scope(settings) as session:
        _store(session, [v["paper"] for v in fb] + learn_data.unseen(), now - timedelta(hours=1))
        ada = add_subscriber(session, "ada@example.org", ["segmentation"])
        bob = add_subscriber(session, "bob@example.org", ["segmentation"])
        for v in fb[:9]:  # Ada votes on most, first the wrong way, then changes her mind
            record_vote(session, ada.id, v["paper"]["id"], "segmentation", not v["relevant"])
            record_vote(session, ada.id, v["paper"]["id"], "segmentation", v["relevant"])
        for v in fb[9:]:
            record_vote(session, bob.id, v["paper"]["id"], "segmentation", v["relevant"])
        with pytest.raises(VoteError, match="no stored paper"):
            record_vote(session, ada.id, "2601.99999", "segmentation", True)
        ids = (ada.id, bob.id)
    with session_scope(settings) as session:
        assert session.query(Vote).count() == len(fb)
        assert votes_of(session, ids[0])[(fb[0]["paper"]["id"], "segmentation")] is True
        result = learn(session, config, plain)
        assert result.trained and result.topics == ["segmentation"] and result.labels == len(fb)
        again = learn(session, config, plain)
        assert not again.trained and again.version == result.version  # same votes: no new version
    expected = train(plain, _labels())
    with session_scope(settings) as session:  # a new session, as after a restart
        row = session.scalars(select(TopicModel)).one()
        assert row.model["parts"] == expected.to_json()["parts"]
        matcher, tag = learned_matcher(session, config, plain)
        assert tag == f"model-{row.version}"
        assert _assigned(matcher, learn_data.unseen()) == \
            {p["id"]: t for p, t in zip(learn_data.unseen(), [["segmentation"], ["segmentation"], [], []])}
        # an admin counter-example is a label too; a vote "belongs in <other topic>" counts there
        record_vote(session, ids[1], learn_data.unseen()[0]["id"], "compression", False, other_topic="segmentation")
        labels = stored_labels(session, config)
        assert ("segmentation", True) in {(lb.topic_id, lb.relevant) for lb in labels
                                          if lb.paper.id == learn_data.unseen()[0]["id"]}
        assert learn(session, config, plain).trained  # the new vote makes a new version


def test_learn_rescores_pending_papers_and_status_reports_unhealthy_topics(settings, config_dir, tmp_path):
    (config_dir / "topics.yaml").write_text(TOPICS.read_text(encoding="utf-8"), encoding="utf-8")
    now = clock.now()
    fb = learn_data.feedback()
    with session_scope(settings) as session:
        _store(session, [v["paper"] for v in fb] + learn_data.unseen(), now - timedelta(hours=1))
        ada = add_subscriber(session, "ada@example.org", ["segmentation"])
        for v in fb:
            record_vote(session, ada.id, v["paper"]["id"], "segmentation", v["relevant"])
    from digest.pipeline import run_match

    assert run_match(settings, load_topics(config_dir / "topics.yaml")) == len(fb) + 4
    with session_scope(settings) as session:
        before = {m.paper_id for m in session.scalars(select(TopicMatch).where(TopicMatch.topic_id == "segmentation"))}
    assert {p["id"] for p in learn_data.unseen()} <= before
    out = _cli("topics", "learn")
    assert out.returncode == 0, out.stderr
    assert "learned topics: segmentation" in out.stdout
    with session_scope(settings) as session:
        after = {m.paper_id for m in session.scalars(select(TopicMatch).where(TopicMatch.topic_id == "segmentation"))}
    unseen = learn_data.unseen()
    assert {unseen[0]["id"], unseen[1]["id"]} <= after and not {unseen[2]["id"], unseen[3]["id"]} & after
    status = _cli("status")
    assert status.returncode == 0, status.stderr
    assert "topic 'segmentation': readers marked 6 of 12 papers 'Not for me'" in status.stdout
    report = _cli("topics", "report", "--days", "7")
    assert report.returncode == 0, report.stderr
    assert "segmentation (!)" in report.stdout and "0.50" in report.stdout
    assert "satellite" in report.stdout  # a suggested exclude: what separates the disliked papers


def test_topics_check_names_examples_that_are_not_stored(settings, config_dir):
    text = TOPICS.read_text(encoding="utf-8").replace(
        "    keywords: [quantization, pruning]\n",
        "    keywords: [quantization, pruning]\n    examples: [2601.30001]\n    counter_examples:\n      - 2601.39999\n")
    (config_dir / "topics.yaml").write_text(text, encoding="utf-8")
    with session_scope(settings) as session:
        _store(session, [learn_data.quantization(1)], clock.now())
    out = _cli("topics", "check")
    assert out.returncode == 2
    path = config_dir / "topics.yaml"
    assert f"{path}:10: topic 'compression': field 'counter_examples': '2601.39999' is not a stored paper" in out.stderr
    assert "2601.30001" not in out.stderr
    bad = text.replace("examples: [2601.30001]", "examples: [not-an-id]")
    path.write_text(bad, encoding="utf-8")
    out = _cli("topics", "check")
    assert out.returncode == 2 and "field 'examples': item 1 'not-an-id' is not an arXiv id" in out.stderr


def test_a_readers_votes_order_their_sections(settings):
    """Ada liked medical segmentation and disliked satellite papers: in her next digest the medical
    paper comes first and the near copy of a disliked paper is not shown; Bob (no votes) keeps
    the shared order."""
    from digest.plan import PlanOptions, plan_edition
    from digest.store.ledger import items_of
    from digest.store.models import Digest
    from digest.topics.personal import PersonalOrder

    now = clock.now()
    fb = learn_data.feedback()
    old, new = now - timedelta(days=3), now - timedelta(hours=1)
    near_copy = dict(learn_data.satellite(0), id="2601.40000")
    street = learn_data.paper("2601.50000", "Image segmentation of street scenes",
                              "Panoptic segmentation of driving videos with a lightweight decoder.")
    fresh = [street, near_copy, learn_data.medical(6)]
    with session_scope(settings) as session:
        _store(session, [v["paper"] for v in fb], old)
        _store(session, fresh, new)
        for rank, p in enumerate(fresh):
            session.add(TopicMatch(paper_id=p["id"], topic_id="segmentation", score=0.9 - rank * 0.1,
                                   matched=["segmentation"], matched_at=new))
        ada = add_subscriber(session, "ada@example.org", ["segmentation"])
        bob = add_subscriber(session, "bob@example.org", ["segmentation"])
        for v in fb:
            record_vote(session, ada.id, v["paper"]["id"], "segmentation", v["relevant"])
        ids = (ada.id, bob.id)
    with session_scope(settings) as session:
        report = plan_edition(session, ["segmentation"], PlanOptions(lookback_days=2), now=now,
                              personal=PersonalOrder())
        assert report.planned == 2
    with session_scope(settings) as session:
        def section(sid):
            did = session.scalar(select(Digest.id).where(Digest.subscriber_id == sid))
            rows = sorted(items_of(session, [did])[did], key=lambda it: it.position)
            return [(r.paper_id, r.shown) for r in rows]

        assert section(ids[1]) == [(p["id"], True) for p in fresh]
        assert section(ids[0]) == [(fresh[2]["id"], True), (fresh[0]["id"], True), (near_copy["id"], False)]


def test_a_paper_just_below_the_threshold_is_asked_about(settings, config_dir):
    """Matching stores each paper's best topic just below its threshold; the planner adds at most
    one such paper per section, as a question the email names "Is this <topic>?"."""
    from digest.email.builder import ContentBuilder
    from digest.email.content import Recipient
    from digest.plan import PlanOptions, plan_edition
    from digest.pipeline import run_match
    from digest.store.ledger import items_of
    from digest.store.models import Digest, NearMatch

    (config_dir / "topics.yaml").write_text(TOPICS.read_text(encoding="utf-8"), encoding="utf-8")
    config = load_topics(config_dir / "topics.yaml")
    now = clock.now()
    inside = learn_data.medical(1)
    near = [learn_data.paper(f"2601.6000{i}", f"Counting cells in microscopy {i}",
                             f"We segment cells in {i} slides. Segmentation of cells is hard.") for i in range(2)]
    with session_scope(settings) as session:
        _store(session, [inside] + near, now - timedelta(hours=1))
        sub = add_subscriber(session, "ada@example.org", ["segmentation"])
        sid = sub.id
    run_match(settings, config)
    with session_scope(settings) as session:
        assert {m.paper_id for m in session.scalars(select(TopicMatch))} == {inside["id"]}
        assert {(n.paper_id, n.topic_id) for n in session.scalars(select(NearMatch))} == \
            {(p["id"], "segmentation") for p in near}
        plan_edition(session, config.ids, PlanOptions(lookback_days=2), now=now)
    with session_scope(settings) as session:
        did = session.scalar(select(Digest.id).where(Digest.subscriber_id == sid))
        rows = items_of(session, [did])[did]
        sections = [(r.section, r.paper_id) for r in rows]
        assert ("segmentation", inside["id"]) in sections
        asked = [p for s, p in sections if s == "ask:segmentation"]
        assert len(asked) == 1 and asked[0] in {p["id"] for p in near}  # at most one per section
        from digest.plan import PlannedItem

        builder = ContentBuilder(settings, {t.id: t.name for t in config.topics})
        builder.load(session, {r.paper_id for r in rows})
        content = builder.build(Recipient(sid, "ada@example.org", None), now.date(),
                                [PlannedItem(r.paper_id, r.section, r.position, r.shown) for r in rows])
    assert [s.name for s in content.sections] == ["Medical image segmentation", "Is this Medical image segmentation?"]
    from digest.email.render import render

    rendered = render(settings, content)
    assert "Is this Medical image " in rendered.html and "segmentation?<span" in rendered.html and "Is this" in rendered.text
    assert "Is this" not in rendered.subject and rendered.subject.startswith("1 new paper: Medical image segmentation")


def test_the_scheduler_retrains_on_its_schedule(settings, config_dir):
    """The scheduler has a learn job; running it trains a version from the stored votes, and a
    second run with no new vote stores nothing new."""
    from digest.scheduler import DigestScheduler

    (config_dir / "topics.yaml").write_text(TOPICS.read_text(encoding="utf-8"), encoding="utf-8")
    fb = learn_data.feedback()
    with session_scope(settings) as session:
        _store(session, [v["paper"] for v in fb], clock.now() - timedelta(hours=1))
        ada = add_subscriber(session, "ada@example.org", ["segmentation"])
        for v in fb:
            record_vote(session, ada.id, v["paper"]["id"], "segmentation", v["relevant"])
    sched = DigestScheduler(settings)
    sched.add_jobs()
    job = sched.scheduler.get_job("learn")
    assert job is not None and job.trigger.interval == timedelta(hours=settings.learn_every_hours)
    sched.learn_job()
    sched.learn_job()
    with session_scope(settings) as session:
        rows = session.scalars(select(TopicModel)).all()
        assert len(rows) == 1 and set(rows[0].model["topics"]) == {"segmentation"}


def test_report_counts_papers_readers_moved_to_another_topic(settings, config_dir):
    """"Belongs in <other topic>" votes, per section topic and target: papers and votes in the
    report's window (an old move and a cleared move are not counted), in `digest topics report`."""
    from digest.topics.report import topic_health

    text = TOPICS.read_text(encoding="utf-8") + (
        "  - id: remote-sensing\n    name: Remote sensing\n    keywords: [satellite images, remote sensing]\n")
    (config_dir / "topics.yaml").write_text(text, encoding="utf-8")
    config = load_topics(config_dir / "topics.yaml")
    now = clock.now()
    sat = [learn_data.satellite(i) for i in range(4)]
    quant = learn_data.quantization(1)
    with session_scope(settings) as session:
        _store(session, sat + [quant], now - timedelta(hours=1))
        ada, bob, cy = (add_subscriber(session, f"{n}@example.org", ["segmentation"]).id for n in ("ada", "bob", "cy"))
        for sub, paper in ((ada, sat[0]), (bob, sat[0]), (ada, sat[1]), (cy, sat[2])):
            record_vote(session, sub, paper["id"], "segmentation", False, other_topic="remote-sensing")
        record_vote(session, bob, quant["id"], "segmentation", False, other_topic="compression")
        record_vote(session, cy, sat[2]["id"], "segmentation", False)          # cy changed her mind: no move
        old = record_vote(session, ada, sat[3]["id"], "segmentation", False, other_topic="remote-sensing")
        old.updated_at = now - timedelta(days=40)                              # outside the window
    with session_scope(settings) as session:
        health = {h.topic_id: h for h in topic_health(session, config, days=30)}
    assert health["segmentation"].moved == [("remote-sensing", 2, 3), ("compression", 1, 1)]
    assert health["segmentation"].votes == 5 and health["segmentation"].relevant == 0
    assert health["compression"].moved == health["remote-sensing"].moved == []
    with session_scope(settings) as session:
        health = {h.topic_id: h for h in topic_health(session, config, days=60)}
    assert health["segmentation"].moved == [("remote-sensing", 3, 4), ("compression", 1, 1)]
    report = _cli("topics", "report", "--days", "30")
    assert report.returncode == 0, report.stderr
    assert "readers moved" in report.stdout
    assert "2 papers to remote-sensing (3 votes)" in report.stdout and "1 paper to compression" in report.stdout
