"""Shared fixtures: an isolated settings object with a real SQLite database per test."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from digest.db import dispose_all
from digest.settings import Settings, reset_settings_cache

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"

TEST_TOPICS = """\
topics:
  - id: medical-segmentation
    name: Medical image segmentation
    description: Segmenting organs, tumours and lesions in CT, MRI and ultrasound images.
    keywords: [medical image segmentation, tumor segmentation, organ segmentation, U-Net]
  - id: vision-language
    name: Vision-language models
    description: Multimodal large language models, image-text models and visual question answering.
    keywords: [vision-language, multimodal large language model, visual question answering, CLIP]
  - id: efficient-attention
    name: Efficient attention
    description: Sparse and linear attention, long-context transformers and state-space models.
    keywords: [efficient attention, sparse attention, linear attention, long context, state space model]
"""


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("DIGEST_"):
            monkeypatch.delenv(key)
    reset_settings_cache()
    yield
    reset_settings_cache()
    dispose_all()


@pytest.fixture
def config_dir(tmp_path) -> Path:
    d = tmp_path / "config"
    d.mkdir()
    (d / "topics.yaml").write_text(TEST_TOPICS, encoding="utf-8")
    (d / "sources.yaml").write_text("sources: []\n", encoding="utf-8")
    return d


@pytest.fixture
def settings(tmp_path, config_dir, monkeypatch) -> Settings:
    """Settings for one test; also exported as DIGEST_* so the CLI sees the same."""
    env = {
        "DIGEST_DATABASE_URL": f"sqlite:///{tmp_path}/digest.db",
        "DIGEST_CONFIG_DIR": str(config_dir),
        "DIGEST_DATA_DIR": str(tmp_path / "var"),
        "DIGEST_DELIVERY": f"file://{tmp_path}/outbox",
        "DIGEST_SECRET_KEY": "test-secret",
        "DIGEST_PUBLIC_URL": "https://digest.example.org",
        "DIGEST_FROM": "Paper Digest <digest@example.org>",
        "DIGEST_HTTP_BACKOFF": "0.01",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_settings_cache()
    return Settings()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
