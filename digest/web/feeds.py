"""Atom feed of a topic (RFC 4287): one entry per paper, newest first.

Entry ids are tag URIs (RFC 4151) built from the public URL's host and the paper id, so an
entry keeps its id however often the feed is fetched or the paper's metadata changes.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit

from digest import clock

ATOM = "http://www.w3.org/2005/Atom"
TAG_DATE = "2026"          # the tag URIs' date: fixed forever, so ids never change


def _iso(when: datetime | None) -> str:
    when = when or clock.now()
    return when.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def entry_id(settings, paper_id: str) -> str:
    host = urlsplit(settings.public_url).hostname or "localhost"
    return f"tag:{host},{TAG_DATE}:paper/{quote(paper_id, safe='.-_')}"


def topic_feed(settings, topic, rows, newest: datetime | None, site_name: str) -> bytes:
    """The feed document; ``rows`` are (first seen, updated, PaperRow), already cleaned."""
    base = settings.public_url.rstrip("/")
    ET.register_namespace("", ATOM)

    def sub(parent, tag, text=None, **attrs):
        el = ET.SubElement(parent, f"{{{ATOM}}}{tag}", {k: v for k, v in attrs.items() if v is not None})
        if text is not None:
            el.text = text
        return el

    feed = ET.Element(f"{{{ATOM}}}feed")
    sub(feed, "id", f"{base}/topics/{topic.id}.atom")
    sub(feed, "title", f"{topic.name} · {site_name}")
    if topic.description:
        sub(feed, "subtitle", topic.description)
    sub(feed, "updated", _iso(newest))
    sub(feed, "link", rel="self", href=f"{base}/topics/{topic.id}.atom", type="application/atom+xml")
    sub(feed, "link", rel="alternate", href=f"{base}/topics/{topic.id}", type="text/html")
    author = sub(feed, "author")
    sub(author, "name", site_name)
    sub(feed, "generator", "digest")
    for seen, updated, p in rows:
        entry = sub(feed, "entry")
        sub(entry, "id", entry_id(settings, p.paper_id))
        sub(entry, "title", p.title)
        sub(entry, "updated", _iso(updated))
        sub(entry, "published", _iso(seen))
        if p.url:
            sub(entry, "link", rel="alternate", href=p.url, type="text/html")
        if p.pdf_url:
            sub(entry, "link", rel="related", href=p.pdf_url, type="application/pdf", title="PDF")
        for name in p.author_names:
            sub(sub(entry, "author"), "name", name)
        if p.category:
            sub(entry, "category", term=p.category)
        summary = p.abstract + (f"\n\nWhy: {p.why}" if p.why else "")
        if summary.strip():
            sub(entry, "summary", summary, type="text")
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
