"""Planning: the diff against earlier sends, sections, caps, weekly, trending, idempotence."""
from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select, update

from digest.store.db import session_factory
from digest.store.ledger import items_of
from digest.store.models import Digest, LedgerSection
from digest.plan import PlanOptions, plan_edition
from tests.factories import add_paper, add_subscriber, utc

TOPICS = ["medical-segmentation", "vision-language", "efficient-attention"]
DAY1 = utc(2026, 11, 18, 6, 0)
DAY2 = utc(2026, 11, 19, 6, 0)


def _items(session, sub_id, edition):
    d = session.scalar(select(Digest).where(Digest.subscriber_id == sub_id, Digest.edition == edition))
    if d is None:
        return None
    items = sorted(items_of(session, [d.id])[d.id], key=lambda it: (it.section, it.position))
    return [(it.section, it.paper_id, it.shown) for it in items]


def _mark_sent(session, edition):
    session.execute(update(Digest).where(Digest.edition == edition).values(status="sent"))
    session.commit()


def test_sections_follow_topic_order_and_each_paper_once(settings):
    make = session_factory(settings)
    with make() as s:
        sub = add_subscriber(s, "a@example.org", ["vision-language", "medical-segmentation"])
        add_paper(s, "2611.00001", seen=DAY1 - timedelta(hours=1), matches={"medical-segmentation": 0.9, "vision-language": 0.5})
        add_paper(s, "2611.00002", seen=DAY1 - timedelta(hours=1), matches={"vision-language": 0.8})
        add_paper(s, "2611.00003", seen=DAY1 - timedelta(hours=1), matches={"vision-language": 0.6}, upvotes=50)
        add_paper(s, "2611.00004", seen=DAY1 - timedelta(hours=1), matches={"vision-language": 0.6}, upvotes=3)
        add_paper(s, "2611.00005", seen=DAY1 - timedelta(hours=1), matches={"efficient-attention": 0.9})
        s.commit()
        report = plan_edition(s, TOPICS, PlanOptions(), edition=date(2026, 11, 18), now=DAY1)
        assert report.planned == 1
        items = _items(s, sub.id, date(2026, 11, 18))
    # 00001 goes to its best topic only; ties broken by upvotes; unsubscribed topic absent
    assert items == [
        ("medical-segmentation", "2611.00001", True),
        ("vision-language", "2611.00002", True),
        ("vision-language", "2611.00003", True),
        ("vision-language", "2611.00004", True),
    ]


def test_two_day_diff_and_rerun_sends_nothing(settings):
    make = session_factory(settings)
    with make() as s:
        sub = add_subscriber(s, "a@example.org", ["medical-segmentation"])
        for i in range(3):
            add_paper(s, f"2611.0010{i}", seen=DAY1 - timedelta(hours=2), matches={"medical-segmentation": 0.7})
        s.commit()
        assert plan_edition(s, TOPICS, PlanOptions(), edition=date(2026, 11, 18), now=DAY1).planned == 1
        _mark_sent(s, date(2026, 11, 18))
        # day 2: two new papers, and a replacement of a day-1 paper is stored but not new
        add_paper(s, "2611.00200", seen=DAY2 - timedelta(hours=2), matches={"medical-segmentation": 0.7})
        add_paper(s, "2611.00201", seen=DAY2 - timedelta(hours=2), matches={"medical-segmentation": 0.9})
        add_paper(s, "2401.00001", seen=DAY2 - timedelta(hours=2), is_new=False, matches={"medical-segmentation": 0.9})
        s.commit()
        assert plan_edition(s, TOPICS, PlanOptions(), edition=date(2026, 11, 19), now=DAY2).planned == 1
        assert [p for _, p, _ in _items(s, sub.id, date(2026, 11, 19))] == ["2611.00201", "2611.00200"]
        again = plan_edition(s, TOPICS, PlanOptions(), edition=date(2026, 11, 19), now=DAY2)
        assert (again.planned, again.already) == (0, 1)
        assert s.scalar(select(func.count()).select_from(Digest)) == 2


def test_counted_papers_do_not_come_back(settings):
    make = session_factory(settings)
    with make() as s:
        sub = add_subscriber(s, "a@example.org", ["medical-segmentation"])
        for i in range(5):
            add_paper(s, f"2611.0030{i}", seen=DAY1 - timedelta(hours=1), matches={"medical-segmentation": 0.9 - i / 10})
        s.commit()
        plan_edition(s, TOPICS, PlanOptions(section_cap=2), edition=date(2026, 11, 18), now=DAY1)
        items = _items(s, sub.id, date(2026, 11, 18))
        assert [shown for _, _, shown in items] == [True, True, False, False, False]
        _mark_sent(s, date(2026, 11, 18))
        report = plan_edition(s, TOPICS, PlanOptions(section_cap=2), edition=date(2026, 11, 19), now=DAY2)
        assert (report.planned, report.empty) == (0, 1)


def test_failed_digest_papers_come_back(settings):
    make = session_factory(settings)
    with make() as s:
        sub = add_subscriber(s, "a@example.org", ["medical-segmentation"])
        add_paper(s, "2611.00400", seen=DAY1 - timedelta(hours=1), matches={"medical-segmentation": 0.9})
        s.commit()
        plan_edition(s, TOPICS, PlanOptions(), edition=date(2026, 11, 18), now=DAY1)
        s.execute(update(Digest).values(status="failed"))
        s.commit()
        plan_edition(s, TOPICS, PlanOptions(), edition=date(2026, 11, 19), now=DAY2)
        assert [p for _, p, _ in _items(s, sub.id, date(2026, 11, 19))] == ["2611.00400"]


def test_lookback_window_and_unknown_topics(settings):
    make = session_factory(settings)
    with make() as s:
        add_subscriber(s, "a@example.org", ["gone-topic", "medical-segmentation"])
        add_paper(s, "2611.00500", seen=DAY1 - timedelta(days=10), matches={"medical-segmentation": 0.9})
        add_paper(s, "2611.00501", seen=DAY1 - timedelta(days=2), matches={"medical-segmentation": 0.9})
        s.commit()
        report = plan_edition(s, TOPICS, PlanOptions(lookback_days=7), edition=date(2026, 11, 18), now=DAY1)
        assert report.planned == 1
        assert any("gone-topic" in w for w in report.warnings)
        papers = [it.paper_id for lst in items_of(s, s.scalars(select(Digest.id))).values() for it in lst]
        assert papers == ["2611.00501"]


def test_no_new_papers_no_email_unless_configured(settings):
    make = session_factory(settings)
    with make() as s:
        add_subscriber(s, "a@example.org", ["medical-segmentation"])
        add_paper(s, "2611.00600", seen=DAY1 - timedelta(hours=1), matches={"vision-language": 0.9})
        s.commit()
        assert plan_edition(s, TOPICS, PlanOptions(), edition=date(2026, 11, 18), now=DAY1).empty == 1
        # a short note is possible, but only when something was announced at all
        assert plan_edition(s, TOPICS, PlanOptions(send_empty=True), edition=date(2026, 11, 18), now=DAY1).planned == 1
        # weekend: nothing new in the store -> no note either
        weekend = DAY2 + timedelta(days=3)
        assert plan_edition(s, TOPICS, PlanOptions(send_empty=True), edition=date(2026, 11, 22), now=weekend).planned == 0


def test_weekly_subscriber_gathers_the_week(settings):
    make = session_factory(settings)
    with make() as s:
        sub = add_subscriber(s, "w@example.org", ["medical-segmentation"], frequency="weekly", weekly_day=0)
        for day in range(5):
            add_paper(s, f"2611.0070{day}", seen=utc(2026, 11, 17 + day, 3), matches={"medical-segmentation": 0.5 + day / 10})
        s.commit()
        friday = utc(2026, 11, 20, 8)
        assert plan_edition(s, TOPICS, PlanOptions(), edition=date(2026, 11, 20), now=friday).not_due == 1
        monday = utc(2026, 11, 23, 8)
        report = plan_edition(s, TOPICS, PlanOptions(weekly_section_cap=3), edition=date(2026, 11, 23), now=monday)
        assert report.planned == 1
        items = _items(s, sub.id, date(2026, 11, 23))
        assert len(items) == 5 and sum(shown for *_, shown in items) == 3


def test_trending_section_never_repeats(settings):
    make = session_factory(settings)
    with make() as s:
        sub = add_subscriber(s, "t@example.org", ["medical-segmentation"], trending=True)
        add_paper(s, "2611.00800", seen=DAY1 - timedelta(hours=1), upvotes=90, hf_on=date(2026, 11, 18),
                  matches={"medical-segmentation": 0.9})
        add_paper(s, "2611.00801", seen=DAY1 - timedelta(hours=1), upvotes=80, hf_on=date(2026, 11, 18))
        add_paper(s, "2611.00802", seen=DAY1 - timedelta(hours=1), upvotes=10, hf_on=date(2026, 11, 18))
        s.commit()
        plan_edition(s, TOPICS, PlanOptions(trending_count=1), edition=date(2026, 11, 18), now=DAY1)
        assert _items(s, sub.id, date(2026, 11, 18)) == [
            ("medical-segmentation", "2611.00800", True), ("trending", "2611.00801", True)]
        _mark_sent(s, date(2026, 11, 18))
        report = plan_edition(s, TOPICS, PlanOptions(trending_count=1), edition=date(2026, 11, 19), now=DAY2)
        assert report.planned == 0


def test_dry_run_writes_nothing_and_groups_share_work(settings):
    make = session_factory(settings)
    with make() as s:
        for i in range(20):
            add_subscriber(s, f"u{i}@example.org", ["medical-segmentation"] if i % 2 else ["vision-language"])
        add_paper(s, "2611.00900", seen=DAY1 - timedelta(hours=1), matches={"medical-segmentation": 0.9, "vision-language": 0.8})
        s.commit()
        report = plan_edition(s, TOPICS, PlanOptions(), edition=date(2026, 11, 18), now=DAY1, dry_run=True)
        assert report.planned == 20 and report.groups == 2 and len(report.dry) == 20
        assert s.scalar(select(func.count()).select_from(Digest)) == 0


def test_compaction_never_lets_an_old_paper_come_back(settings):
    from digest.delivery.ledger import compact_ledger

    make = session_factory(settings)
    with make() as s:
        sub = add_subscriber(s, "a@example.org", ["medical-segmentation"])
        add_paper(s, "2611.01100", seen=DAY1 - timedelta(hours=1), matches={"medical-segmentation": 0.9})
        s.commit()
        plan_edition(s, TOPICS, PlanOptions(), edition=date(2026, 11, 18), now=DAY1)
        _mark_sent(s, date(2026, 11, 18))
        later = DAY1 + timedelta(days=9)
        assert compact_ledger(s, keep_days=1, lookback_days=7, now=later) == 1
        assert s.scalar(select(func.count()).select_from(LedgerSection)) == 0
        assert s.scalar(select(Digest.sections)) is None and s.scalar(select(Digest.status)) == "sent"
        # even with its send record gone and the subscriber's last digest long ago, it stays out
        report = plan_edition(s, TOPICS, PlanOptions(lookback_days=7), edition=date(2026, 11, 27), now=later)
        assert report.planned == 0
        assert _items(s, sub.id, date(2026, 11, 18)) == []


def test_each_distinct_section_is_stored_once_and_read_back_in_order(settings):
    """Readers with the same topics share their sections' rows; every digest reads back what it
    carried, shown papers first and the "N more" ones counted, in planned order."""
    from digest.store.ledger import items_of

    make = session_factory(settings)
    with make() as s:
        subs = [add_subscriber(s, f"u{i}@example.org", topics) for i, topics in enumerate(
            [["vision-language", "medical-segmentation"]] * 3 + [["medical-segmentation"]])]
        for k in range(4):
            add_paper(s, f"2611.0200{k}", seen=DAY1 - timedelta(hours=1), matches={"vision-language": 0.9 - k / 10})
        add_paper(s, "2611.02010", seen=DAY1 - timedelta(hours=1), matches={"medical-segmentation": 0.9})
        s.commit()
        plan_edition(s, TOPICS, PlanOptions(section_cap=3), edition=date(2026, 11, 18), now=DAY1)
        # vision-language (3 shown + 1 counted) and medical-segmentation: two rows for seven section uses
        assert s.scalar(select(func.count()).select_from(LedgerSection)) == 2
        ids = dict(s.execute(select(Digest.subscriber_id, Digest.id)).all())
        got = items_of(s, ids.values())
        assert [(i.section, i.paper_id, i.position, i.shown) for i in got[ids[subs[0].id]]] == [
            ("vision-language", "2611.02000", 0, True), ("vision-language", "2611.02001", 1, True),
            ("vision-language", "2611.02002", 2, True), ("vision-language", "2611.02003", 3, False),
            ("medical-segmentation", "2611.02010", 0, True)]
        assert [(i.section, i.paper_id) for i in got[ids[subs[3].id]]] == [("medical-segmentation", "2611.02010")]


def test_compaction_deletes_only_sections_nobody_refers_to_or_may_reuse(settings):
    """A section whose digests are gone is deleted only once it was last used before the cutoff
    (a planner may be about to refer to one used recently); a referenced one always stays."""
    from digest.delivery.ledger import compact_ledger

    make = session_factory(settings)
    with make() as s:
        a = add_subscriber(s, "a@example.org", ["medical-segmentation"])
        add_paper(s, "2611.03000", seen=DAY1 - timedelta(hours=1), matches={"medical-segmentation": 0.9})
        s.commit()
        plan_edition(s, TOPICS, PlanOptions(), edition=date(2026, 11, 18), now=DAY1)
        s.delete(s.get(type(a), a.id))     # its digest goes with it: its section is unreferenced
        later = DAY1 + timedelta(days=2)
        add_subscriber(s, "b@example.org", ["vision-language"])
        add_paper(s, "2611.03001", seen=later - timedelta(hours=1), matches={"vision-language": 0.9})
        s.commit()
        plan_edition(s, TOPICS, PlanOptions(), edition=date(2026, 11, 20), now=later)
        assert compact_ledger(s, keep_days=8, lookback_days=7, now=DAY1 + timedelta(days=1)) == 0
        assert s.scalar(select(func.count()).select_from(LedgerSection)) == 2
        assert compact_ledger(s, keep_days=8, lookback_days=7, now=DAY1 + timedelta(days=9, hours=1)) == 1
        assert s.scalars(select(LedgerSection.section)).all() == ["vision-language"]   # b's digest keeps it
        assert s.scalar(select(Digest.sections)) is not None
        assert compact_ledger(s, keep_days=8, lookback_days=7, now=later + timedelta(days=9)) == 1
        assert s.scalar(select(func.count()).select_from(LedgerSection)) == 0
        assert s.scalar(select(Digest.status)) == "planned" and s.scalar(select(Digest.sections)) is None
