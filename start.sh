#!/usr/bin/env bash
# Install (first run) and start the bot: web server + scheduler, SQLite, local media, sample DMS feed.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
if [ ! -f .env ]; then
  cp .env.example .env
  echo "Created .env from .env.example: put your Slack app's SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET in it."
fi
exec .venv/bin/python bot.py serve "$@"
