"""Readers vote from the email and the digest page (issue 14), end to end on real components:
the digest goes through the aiosmtpd sink, its "Not for me" link is followed in Debian's
Chromium against `digest web` (uvicorn on 127.0.0.1), on the database under test.

- Opening a vote link (as a reader or a mail scanner) records nothing; the page's one button does.
- Tampered links, papers or topics the digest did not carry, another subscriber's binding, a
  missing CSRF token: refused, nothing recorded.
- The page's own buttons vote directly, show the vote pressed, and a vote changes, never doubles.
- The next digest follows: a near copy of the paper marked "Not for me" is not shown to that
  reader (it is counted in "+ 1 more"); another reader still gets it.
"""
from __future__ import annotations

import html as htmlmod
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import select

from digest import clock as app_clock, tokens
from digest.email.render import Renderer
from digest.email.vote_links import vote_query
from digest.pipeline import send_now
from digest.store.db import session_scope
from digest.store.ledger import PlannedItem, encode_ids, items_of, section_keys, upsert_sections
from digest.store.models import Digest, Subscriber, Vote
from tests.factories import add_paper, add_subscriber
from tests.test_a11y import serious
from tests.test_reader import ARTIFACTS, browser, html_part, live, sink, text_part  # noqa: F401 (fixtures)

CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]{64})"')
LIVER = "Tumor segmentation of liver CT scans"
FARM = "U-Net segmentation of satellite images of farmland"
FARM_ABSTRACT = ("A U-Net segments land cover in satellite images of farmland for earth observation and mapping "
                 "of the planet surface with remote sensing.")


def seed(s):
    """Ada (medical segmentation) and Bob (the same and vision-language); a liver paper, a farmland
    paper that the keyword U-Net puts in medical segmentation, and a vision-language paper."""
    now = app_clock.now()
    with session_scope(s) as session:
        add_paper(session, "2611.00100", title=LIVER, seen=now - timedelta(hours=2),
                  abstract="We segment tumors in CT scans of the liver with a U-Net for the clinical diagnosis "
                           "of patients in hospital radiology.")
        add_paper(session, "2611.00200", title=FARM, seen=now - timedelta(hours=2), abstract=FARM_ABSTRACT)
        add_paper(session, "2611.00300", title="A vision-language model for visual question answering",
                  seen=now - timedelta(hours=2), abstract="CLIP features for visual question answering.")
        ada = add_subscriber(session, "ada@example.org", ["medical-segmentation"])
        bob = add_subscriber(session, "bob@example.org", ["medical-segmentation", "vision-language"])
        return ada.id, bob.id


def votes(s) -> list[tuple]:
    with session_scope(s) as session:
        return sorted((v.subscriber_id, v.paper_id, v.topic_id, v.relevant) for v in session.scalars(select(Vote)))


def mail_to(sink, address: str, n: int = 1):
    got = [m.parsed() for m in sink.messages if address in m.rcpt_tos]
    assert len(got) == n, f"{len(got)} mails to {address}"
    return got[-1]


def vote_links(html: str) -> dict[tuple[str, str], str]:
    """(paper id, label) -> URL of every vote link in the email's HTML."""
    out = {}
    for href, label in re.findall(r'\shref="([^"]+\?vote=[^"]+)"[^>]*>([^<]+)</a>', html):
        url = htmlmod.unescape(href)
        out[(parse_qs(urlsplit(url).query)["vote"][0], label)] = url
    return out


def csrf(client: httpx.Client, url: str) -> str:
    r = client.get(url)
    assert r.status_code == 200, r.text
    return CSRF_RE.search(r.text).group(1)


def test_not_for_me_from_the_received_email_then_the_next_digest_follows(live, sink, browser):
    s, url = live
    ada, bob = seed(s)
    assert send_now(s, ingest=False).send.sent == 2
    received = mail_to(sink, "ada@example.org")
    html, text = html_part(received), text_part(received).replace("\r\n", "\n")
    links = vote_links(html)
    assert set(links) == {(p, label) for p in ("2611.00100", "2611.00200") for label in ("Relevant", "Not for me")}
    no_link = links[("2611.00200", "Not for me")]
    with session_scope(s) as session:
        ada_digest = session.scalars(select(Digest).where(Digest.subscriber_id == ada)).one()
        bob_digest = session.scalars(select(Digest).where(Digest.subscriber_id == bob)).one()
        ada_secret, bob_secret = session.get(Subscriber, ada).link_secret, session.get(Subscriber, bob).link_secret
    view = tokens.digest_url(s, ada_digest.id, ada_secret)
    # the only per-reader part is the digest page's URL; the text part carries the same links
    assert no_link == view + "?vote=2611.00200&topic=medical-segmentation&v=no#vote"
    assert f"   Not for me: {no_link}\n" in text and f"   Relevant: {links[('2611.00100', 'Relevant')]}" in text

    # a mail scanner opens every link (and HEAD): nothing is recorded
    with httpx.Client(timeout=20) as scanner:
        for link in links.values():
            assert scanner.get(link).status_code == 200
            assert scanner.head(link).status_code == 200
    assert votes(s) == []

    page = browser.new_page(viewport={"width": 375, "height": 900})
    try:
        resp = page.goto(no_link)           # as the reader clicks it in the received email
        assert resp.status == 200 and resp.headers["cache-control"] == "no-store"
        box = page.locator("#vote")
        assert box.inner_text().startswith(f"Mark {FARM} as not relevant to Medical image segmentation?")
        assert box.is_visible() and votes(s) == []           # GET records nothing
        assert serious(page) == [], "confirmation box"
        page.screenshot(path=str(ARTIFACTS / "votes-confirm-375.png"))
        with page.expect_navigation():
            box.get_by_role("button", name="Mark as not for me").click()
        assert votes(s) == [(ada, "2611.00200", "medical-segmentation", False)]
        assert page.url.endswith("#vote") and "noted=2611.00200" in page.url
        assert page.locator("#vote").inner_text() == "Thanks, noted: not relevant to Medical image segmentation."
        farm_no = page.get_by_role("button", name=f"Not for me: {FARM}")
        assert farm_no.get_attribute("aria-pressed") == "true"
        assert page.get_by_role("button", name=f"Relevant: {FARM}").get_attribute("aria-pressed") == "false"

        # the page's own buttons post directly; a vote changes, never doubles
        liver_yes = page.get_by_role("button", name=f"Relevant: {LIVER}")
        liver_no = page.get_by_role("button", name=f"Not for me: {LIVER}")
        assert liver_yes.get_attribute("aria-pressed") == liver_no.get_attribute("aria-pressed") == "false"
        for button, relevant in ((liver_yes, True), (liver_yes, True), (liver_no, False), (liver_yes, True)):
            with page.expect_navigation():
                button.click()
            assert votes(s) == [(ada, "2611.00100", "medical-segmentation", relevant),
                                (ada, "2611.00200", "medical-segmentation", False)]
            assert liver_yes.get_attribute("aria-pressed") == ("true" if relevant else "false")
            assert liver_no.get_attribute("aria-pressed") == ("false" if relevant else "true")
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            assert serious(page) == [], f"digest page with votes ({scheme})"
        page.screenshot(path=str(ARTIFACTS / "votes-page-375.png"))
    finally:
        page.close()

    # refused, and nothing recorded: tampered links, what the digest did not carry, another binding
    before = votes(s)
    with httpx.Client(timeout=20) as c:
        token = csrf(c, view)
        form = {"csrf_token": token, "paper": "2611.00100", "topic": "medical-segmentation", "v": "no"}
        tok = view.rsplit("/", 1)[1]
        tampered = view[:-60] + tok[:30] + ("A" if tok[30] != "A" else "B") + tok[31:]
        foreign = view[:-60] + tokens.make_token(s.secret_key, "digest", ada_digest.id, bind=bob_secret)
        refused = [
            (tampered, form, 400),
            (foreign, form, 400),                                          # Ada's digest, Bob's binding
            (view, dict(form, paper="2611.00300"), 400),                   # only in Bob's digest
            (view, dict(form, paper="2611.99999"), 400),                   # no such paper
            (view, dict(form, topic="vision-language"), 400),              # not a section of Ada's digest
            (view, dict(form, topic="trending"), 400),
            (view, dict(form, v="maybe"), 400),
            (view, {k: v for k, v in form.items() if k != "csrf_token"}, 403),
            (view, dict(form, csrf_token="0" * 64), 403),
        ]
        for target, data, status in refused:
            r = c.post(target, data=data)
            assert r.status_code == status, (data, r.status_code, r.text[:300])
            assert "Traceback" not in r.text
        assert "did not carry paper '2611.00300' in section 'medical-segmentation'" in \
            htmlmod.unescape(c.post(view, data=dict(form, paper="2611.00300")).text)
        # a GET vote link for a paper the digest did not carry is refused too
        assert c.get(view + vote_query("2611.00300", "vision-language", False)).status_code == 400
        assert c.get(view + "?vote=2611.00100&topic=medical-segmentation&v=maybe").status_code == 400
        assert votes(s) == before
        # Bob's own link votes for Bob, on the paper only his digest carried
        bob_view = tokens.digest_url(s, bob_digest.id, bob_secret)
        r = c.post(bob_view, data=dict(form, csrf_token=csrf(c, bob_view), paper="2611.00300", topic="vision-language",
                                       v="yes"))
        assert r.status_code == 303 and r.headers["location"].startswith(urlsplit(bob_view).path + "?noted=2611.00300")
    assert votes(s) == sorted(before + [(bob, "2611.00300", "vision-language", True)])

    # the next digest: a near copy of the farmland paper is not shown to Ada, Bob still gets it
    later = app_clock.now()
    with session_scope(s) as session:
        add_paper(session, "2611.00400", title=FARM + ", revisited", seen=later, abstract=FARM_ABSTRACT)
        add_paper(session, "2611.00500", title="Tumor segmentation of brain MRI", seen=later,
                  abstract="We segment tumors in MRI scans of the brain with a U-Net for the clinical diagnosis "
                           "of patients in hospital radiology.")
    report = send_now(s, ingest=False, edition=app_clock.now().date() + timedelta(days=1))
    assert report.send.sent == 2, report.send.errors
    ada_next, bob_next = mail_to(sink, "ada@example.org", 2), mail_to(sink, "bob@example.org", 2)
    ada_html, bob_html = html_part(ada_next), html_part(bob_next)
    assert "Tumor segmentation of brain MRI" in ada_html and FARM + ", revisited" not in ada_html
    assert "+ 1 more in this topic" in ada_html
    assert "Tumor segmentation of brain MRI" in bob_html and FARM + ", revisited" in bob_html
    with session_scope(s) as session:
        ids = session.scalars(select(Digest.id).where(Digest.subscriber_id == ada)).all()
        shown = {it.paper_id: it.shown for lst in items_of(session, ids).values() for it in lst
                 if it.paper_id == "2611.00400"}
    assert shown == {"2611.00400": False}       # carried (on the page), not shown in the email


def test_vote_links_keep_the_render_shared_between_readers(settings):
    """Two readers of the same content: one shared render, the vote links differ only by the
    page URL; a question section says Yes / No; Trending has no vote links."""
    from tests.digest_samples import realistic
    from digest.email.content import Section, PaperItem

    r = Renderer(settings)
    first, second = realistic(4), realistic(4)
    for content, tok in ((first, "A" * 60), (second, "B" * 60)):
        content.view_url = f"https://digest.example.org/digest/{tok}"
        content.sections.append(Section("ask:vlm", "Is this Vision-language models?", [
            PaperItem(paper_id="2611.30000", title="Maybe a VLM paper", url="https://arxiv.org/abs/2611.30000",
                      authors=["A. Author"], abstract="Short.")]))
        content.sections.append(Section("trending", "Trending on Hugging Face", [
            PaperItem(paper_id="2611.20000", title="A trending paper", url="https://arxiv.org/abs/2611.20000",
                      authors=["A. Author"], abstract="Short.", hf_upvotes=10)]))
    one, two = r.render(first), r.render(second)
    assert len(r._contents) == 1                          # one shared render for both readers
    assert two.html == one.html.replace("A" * 60, "B" * 60) and two.text == one.text.replace("A" * 60, "B" * 60)
    links = vote_links(one.html)
    assert ("2611.30000", "Yes") in links and ("2611.30000", "No") in links
    assert links[("2611.30000", "No")].endswith("?vote=2611.30000&topic=ask%3Avlm&v=no#vote")
    assert not any(p == "2611.20000" for p, _ in links)
    assert "   Yes: https://digest.example.org/digest/" + "A" * 60 + "?vote=2611.30000" in one.text
    # hostile ids are URL-encoded, and the HTML escapes the rest
    assert vote_query('a&b"<x>', "t#1", True) == "?vote=a%26b%22%3Cx%3E&topic=t%231&v=yes#vote"
    # without a web page (previews) there is nowhere to vote
    assert "?vote=" not in r.render(realistic(4)).html


def test_a_question_is_answered_yes_for_its_topic(live):
    """A paper asked about ("Is this <topic>?", section ask:<topic>) gets Yes / No; Yes is a
    relevant vote on <topic> itself; the thank-you shows only for a stored vote."""
    s, url = live
    now = app_clock.now()
    with session_scope(s) as session:
        add_paper(session, "2611.00700", title="Counting cells in microscopy", seen=now - timedelta(hours=2))
        sub = add_subscriber(session, "ada@example.org", ["medical-segmentation"])
        asked = [PlannedItem("2611.00700", "ask:medical-segmentation", 0, True)]
        ids = upsert_sections(session.connection(), section_keys(asked), now.date())
        digest = Digest(subscriber_id=sub.id, edition=now.date(), status="sent", planned_at=now, sent_at=now,
                        sections=encode_ids(ids[k] for k in section_keys(asked)))
        session.add(digest)
        session.flush()
        sid, view = sub.id, tokens.digest_url(s, digest.id, sub.link_secret)
    with httpx.Client(timeout=20) as c:
        page = c.get(view)
        assert page.status_code == 200 and 'aria-label="Yes: Counting cells in microscopy"' in page.text
        assert 'aria-label="No: Counting cells in microscopy"' in page.text and 'aria-pressed="true"' not in page.text
        noted = view + "?noted=2611.00700&topic=ask%3Amedical-segmentation#vote"
        assert "Thanks, noted" not in c.get(noted).text          # no vote stored: no thanks
        ask = c.get(view + vote_query("2611.00700", "ask:medical-segmentation", True))
        assert "Mark <b dir=\"auto\">Counting cells in microscopy</b> as relevant to Medical image segmentation?" \
            in ask.text and votes(s) == []
        r = c.post(view, data={"csrf_token": CSRF_RE.search(ask.text).group(1), "paper": "2611.00700",
                               "topic": "ask:medical-segmentation", "v": "yes"})
        assert r.status_code == 303 and r.headers["location"].endswith(
            "?noted=2611.00700&topic=ask%3Amedical-segmentation#vote")
        assert votes(s) == [(sid, "2611.00700", "medical-segmentation", True)]
        after = c.get(noted)
        assert "Thanks, noted: relevant to Medical image segmentation." in after.text
        assert after.headers["cache-control"] == "no-store"
        # the plain page: the vote pressed, and its ETag changes with the vote
        plain = c.get(view)
        assert 'value="yes" aria-pressed="true"' in plain.text
        assert c.get(view, headers={"If-None-Match": plain.headers["etag"]}).status_code == 304
        assert c.get(view, headers={"If-None-Match": page.headers["etag"]}).status_code == 200


VQA_CT = "Tumor segmentation as visual question answering with a vision-language model"


def moves(s) -> list[tuple]:
    with session_scope(s) as session:
        return sorted((v.subscriber_id, v.paper_id, v.topic_id, v.relevant, v.other_topic)
                      for v in session.scalars(select(Vote)))


def test_belongs_in_another_topic_from_the_email_and_the_page(live, sink, browser):
    """Ada follows the email's "Not for me" link of a paper that is really about vision-language
    models, picks that topic in the box and presses Move: a "Not for me" vote for medical
    segmentation that names the other topic; the page says so; learning counts the paper as
    relevant to vision-language. A later plain vote clears the move."""
    from digest.topics.current import current_topics
    from digest.topics.learn_store import stored_labels

    s, url = live
    now = app_clock.now()
    with session_scope(s) as session:
        add_paper(session, "2611.00100", title=LIVER, seen=now - timedelta(hours=2),
                  abstract="We segment tumors in CT scans of the liver with a U-Net for the clinical diagnosis "
                           "of patients in hospital radiology.")
        add_paper(session, "2611.00600", title=VQA_CT, seen=now - timedelta(hours=2),
                  abstract="A vision-language model with a U-Net image encoder answers clinical questions about "
                           "CT scans: visual question answering for radiology.")
        ada = add_subscriber(session, "ada@example.org", ["medical-segmentation"]).id
    assert send_now(s, ingest=False).send.sent == 1
    links = vote_links(html_part(mail_to(sink, "ada@example.org")))
    assert set(links) == {(p, label) for p in ("2611.00100", "2611.00600") for label in ("Relevant", "Not for me")}, links
    with session_scope(s) as session:
        digest = session.scalars(select(Digest).where(Digest.subscriber_id == ada)).one()
        view = tokens.digest_url(s, digest.id, session.get(Subscriber, ada).link_secret)

    page = browser.new_page(viewport={"width": 375, "height": 900})
    try:
        page.goto(links[("2611.00600", "Not for me")])
        box = page.locator("#vote")
        assert moves(s) == []                                   # GET records nothing
        other = box.get_by_label(f"Or it belongs in another topic: {VQA_CT}")
        # the other topics of the config, by name (not the section's own)
        assert other.locator("option").all_inner_texts() == ["Choose a topic", "Vision-language models",
                                                              "Efficient attention"]
        assert box.get_by_role("button", name="Mark as not for me").is_visible()   # the plain button stays
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            assert serious(page) == [], f"'Not for me' box with 'Belongs in' ({scheme})"
        page.emulate_media(color_scheme="light")
        page.screenshot(path=str(ARTIFACTS / "votes-move-confirm-375.png"))
        # Move with no topic chosen: the browser asks for one, nothing is sent
        box.get_by_role("button", name=f"Move: {VQA_CT}").click()
        assert other.evaluate("e => e.validity.valueMissing") and moves(s) == []
        other.select_option(label="Vision-language models")
        with page.expect_navigation():
            box.get_by_role("button", name=f"Move: {VQA_CT}").click()
        assert moves(s) == [(ada, "2611.00600", "medical-segmentation", False, "vision-language")]
        assert "noted=2611.00600" in page.url and page.url.endswith("#vote")
        assert page.locator("#vote").inner_text() == \
            "Thanks, noted: belongs in Vision-language models, not in Medical image segmentation."
        assert page.get_by_role("button", name=f"Not for me: {VQA_CT}").get_attribute("aria-pressed") == "true"

        # the plain page keeps showing the reader's move, its topic selected
        page.goto(view)
        vqa = page.locator("#p-2611\\.00600")
        assert vqa.locator(".moved").inner_text() == "Noted: belongs in Vision-language models."
        assert vqa.get_by_label(f"Belongs in another topic: {VQA_CT}").input_value() == "vision-language"
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            assert serious(page) == [], f"digest page with a move ({scheme})"
        page.emulate_media(color_scheme="light")
        page.screenshot(path=str(ARTIFACTS / "votes-move-page-375.png"), full_page=True)

        # the page's own form: move the liver paper, then change the vote back to Relevant
        liver = page.locator("#p-2611\\.00100")
        assert liver.locator(".moved").count() == 0
        liver.get_by_label(f"Belongs in another topic: {LIVER}").select_option("efficient-attention")
        with page.expect_navigation():
            liver.get_by_role("button", name=f"Move: {LIVER}").click()
        assert (ada, "2611.00100", "medical-segmentation", False, "efficient-attention") in moves(s)
        assert page.locator("#vote").inner_text() == \
            "Thanks, noted: belongs in Efficient attention, not in Medical image segmentation."
        with page.expect_navigation():
            page.get_by_role("button", name=f"Relevant: {LIVER}").click()
        assert moves(s) == [(ada, "2611.00100", "medical-segmentation", True, None),
                            (ada, "2611.00600", "medical-segmentation", False, "vision-language")]
        assert page.locator("#vote").inner_text() == "Thanks, noted: relevant to Medical image segmentation."
        liver = page.locator("#p-2611\\.00100")
        assert liver.locator(".moved").count() == 0
        assert liver.get_by_label(f"Belongs in another topic: {LIVER}").input_value() == ""
    finally:
        page.close()

    # learning: the moved paper is a "not relevant" label for the section's topic and a
    # relevant one for the topic it belongs in; the liver paper's old move is gone
    config, _ = current_topics(s)
    with session_scope(s) as session:
        labels = {(lb.paper.id, lb.topic_id, lb.relevant) for lb in stored_labels(session, config)}
    assert labels == {("2611.00600", "medical-segmentation", False), ("2611.00600", "vision-language", True),
                      ("2611.00100", "medical-segmentation", True)}


def test_a_move_is_refused_unless_it_names_another_topic_of_the_config(live):
    """Plain HTTP: "belongs in" must name a topic of the current config other than the
    section's, from a topic section, as a "Not for me"; else 400, one line, nothing recorded.
    A bad token or CSRF token refuses it as any vote."""
    s, url = live
    now = app_clock.now()
    with session_scope(s) as session:
        add_paper(session, "2611.00100", title=LIVER, seen=now - timedelta(hours=2))
        add_paper(session, "2611.00700", title="Counting cells in microscopy", seen=now - timedelta(hours=2))
        sub = add_subscriber(session, "ada@example.org", ["medical-segmentation"])
        carried = [PlannedItem("2611.00100", "medical-segmentation", 0, True),
                   PlannedItem("2611.00700", "ask:medical-segmentation", 0, True)]
        ids = upsert_sections(session.connection(), section_keys(carried), now.date())
        digest = Digest(subscriber_id=sub.id, edition=now.date(), status="sent", planned_at=now, sent_at=now,
                        sections=encode_ids(ids[k] for k in section_keys(carried)))
        session.add(digest)
        session.flush()
        sid, view = sub.id, tokens.digest_url(s, digest.id, sub.link_secret)
    with httpx.Client(timeout=20) as c:
        page = c.get(view)
        assert page.status_code == 200
        # one move form, for the topic section's paper; none under the question
        assert page.text.count('name="other"') == 1 and 'aria-label="Move: Counting cells' not in page.text
        form = {"csrf_token": CSRF_RE.search(page.text).group(1), "paper": "2611.00100",
                "topic": "medical-segmentation", "v": "no", "other": "vision-language"}
        tok = view.rsplit("/", 1)[1]
        tampered = view[:-60] + tok[:30] + ("A" if tok[30] != "A" else "B") + tok[31:]
        refused = [
            (view, dict(form, other="no-such-topic"), 400, "There is no topic 'no-such-topic' to move the paper to."),
            (view, dict(form, other="medical-segmentation"), 400, "The paper is already in that topic"),
            (view, dict(form, other="trending"), 400, "There is no topic 'trending'"),
            (view, dict(form, other=""), 400, "Choose the topic this paper belongs in."),
            (view, dict(form, v="yes"), 400, "is a 'Not for me' vote (v=no) for this one"),
            (view, dict(form, paper="2611.00700", topic="ask:medical-segmentation"), 400, "not from a question"),
            (view, dict(form, other='<b>x</b>\n"y"'), 400, "There is no topic '<b>x</b>?\"y\"' to move"),
            (tampered, form, 400, "This link is not valid"),
            (view, dict(form, csrf_token="0" * 64), 403, "This form has expired"),
            (view, {k: v for k, v in form.items() if k != "csrf_token"}, 403, "This form has expired"),
        ]
        for target, data, status, message in refused:
            r = c.post(target, data=data)
            assert r.status_code == status, (data, r.status_code, r.text[:300])
            assert message in htmlmod.unescape(r.text) and "Traceback" not in r.text, (data, r.text[:600])
            assert "<b>x" not in r.text                     # escaped
        assert moves(s) == []
        # a topic that left the config is no longer offered nor accepted
        topics_file = s.topics_file
        text = topics_file.read_text(encoding="utf-8")
        cut = text.index("  - id: vision-language")
        topics_file.write_text(text[:cut] + text[text.index("  - id: efficient-attention"):], encoding="utf-8")
        page = c.get(view)
        assert 'value="vision-language"' not in page.text and 'value="efficient-attention"' in page.text
        r = c.post(view, data=form)
        assert r.status_code == 400 and "There is no topic 'vision-language'" in htmlmod.unescape(r.text)
        assert moves(s) == []
        r = c.post(view, data=dict(form, other="efficient-attention"))
        assert r.status_code == 303, r.text[:300]
        assert moves(s) == [(sid, "2611.00100", "medical-segmentation", False, "efficient-attention")]
        moved = c.get(view)
        assert "Noted: belongs in Efficient attention." in moved.text
        # "Not for me" without `other` clears the move; the page's ETag follows the move, not only the vote
        r = c.post(view, data={k: v for k, v in form.items() if k != "other"})
        assert r.status_code == 303
        assert moves(s) == [(sid, "2611.00100", "medical-segmentation", False, None)]
        cleared = c.get(view, headers={"If-None-Match": moved.headers["etag"]})
        assert cleared.status_code == 200 and "Noted: belongs in" not in cleared.text
