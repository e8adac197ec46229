"""Fixtures for the RO-space tests: the app's services on SQLite (no web server), and a feed file."""

from __future__ import annotations

import pytest

import bot
from core.config import load_settings
from tests.support.harness import make_env


@pytest.fixture
def services(fake_slack, sqlite_url, tmp_path):
    """What a process of the app has (its tasks registered), without the web server."""
    settings = load_settings(make_env(fake_slack, sqlite_url, tmp_path), require_slack=True)
    bot.open_storage(settings)
    return bot.build_services(settings)


@pytest.fixture
def feed(tmp_path):
    return tmp_path / "feed.csv"
