"""Sources: from a listing to stored papers.

Owns `sources.yaml` (`config`), fetching over HTTP or from files (`fetch`), parsing arXiv
RSS/Atom and Hugging Face Daily Papers (`parse`), arXiv ids (`ids`), markup to plain text
(`textclean`) and the upsert of one row per paper (`ingest`). May import `digest.store`.
"""
