"""Email: what a digest says and the bytes that carry it.

Owns the content model of a digest (`content`) and how planned items become it (`builder`),
the "why you got this" line (`why`), display-text cleaning (`display`), the Jinja2 → MJML →
HTML and text render, each section rendered once and shared (`render`, `rendered`), MJML compiled with
the text bodies lifted out and the layout cached (`layout`), what
the templates see and the cache keys of papers and sections (`views`), the
"Relevant" / "Not for me" links under each paper (`vote_links`) and the MIME message with
its headers (`message`). May import `digest.plan`, `digest.topics`,
`digest.tokens` and `digest.store`; never the send loop.
"""
