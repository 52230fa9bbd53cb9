"""Slack handlers: thin listeners, each registered with `register(app)`. They parse,
authorise, call the engine and render; no network logic lives here."""
