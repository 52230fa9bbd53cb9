"""The Bolt app: built from the environment, served over Socket Mode or HTTP.

Tokens come from the environment only and are registered for redaction, so they
never reach a log line, an audit record or a message.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from slack_bolt import App, BoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.inventory import Inventory
from bot.serve import Daemon
from bot.state import register_secret
from bot.views import Phrasing
from bot.web import Activity
from bot.workflow import Workflow
from handlers import register_all
from handlers.context import KEY, SlackAccess, SlackContext
from handlers.gate import Route, guarded
from handlers.poster import Poster

log = logging.getLogger("lasthop.slack")
DEFAULT_API_URL = "https://slack.com/api/"


class SlackSetupError(Exception):
    """A one-line reason the Slack app cannot start (missing or refused token)."""


@dataclass(frozen=True)
class SlackSettingsEnv:
    bot_token: str
    signing_secret: str | None
    app_token: str | None
    api_url: str

    @property
    def socket_mode(self) -> bool:
        return bool(self.app_token)


def settings_from_env(env: Mapping[str, str] | None = None) -> SlackSettingsEnv | None:
    """None when no Slack settings are given at all (lasthop then notifies to its log)."""
    env = os.environ if env is None else env
    token = env.get("SLACK_BOT_TOKEN", "").strip()
    secret = env.get("SLACK_SIGNING_SECRET", "").strip() or None
    app_token = env.get("SLACK_APP_TOKEN", "").strip() or None
    if not (token or secret or app_token):
        return None
    if not token:
        raise SlackSetupError("SLACK_BOT_TOKEN is not set (it starts with xoxb-)")
    if not token.startswith("xoxb-"):
        raise SlackSetupError("SLACK_BOT_TOKEN does not look like a bot token (it should start with xoxb-)")
    if app_token and not app_token.startswith("xapp-"):
        raise SlackSetupError("SLACK_APP_TOKEN does not look like an app-level token (it should start with xapp-)")
    if not app_token and not secret:
        raise SlackSetupError("HTTP mode needs SLACK_SIGNING_SECRET (or set SLACK_APP_TOKEN for Socket Mode)")
    for secret_value in (token, secret, app_token):
        if secret_value:
            register_secret(secret_value)
    api_url = env.get("SLACK_API_URL", "").strip() or DEFAULT_API_URL
    if not api_url.endswith("/"):
        api_url += "/"
    return SlackSettingsEnv(token, secret, app_token, api_url)


def web_client(settings: SlackSettingsEnv) -> WebClient:
    """Bolt's client (acks, forms, response URLs): it waits out a 429 itself, a few times."""
    return WebClient(token=settings.bot_token, base_url=settings.api_url, timeout=10,
                     retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=3)])


def poster_client(settings: SlackSettingsEnv) -> WebClient:
    """The poster's client: no retry handlers at all, because the poster handles 429s and network
    trouble itself; two layers would wait out the same Retry-After twice."""
    return WebClient(token=settings.bot_token, base_url=settings.api_url, timeout=10, retry_handlers=[])


def slack_context(inv: Inventory, daemon: Daemon, poster: Poster, settings: SlackSettingsEnv,
                  activity: Activity | None = None) -> SlackContext:
    """The Slack side of `lasthop serve`: the daemon's engine and incidents, Slack's roles, the poster;
    `activity`, the HTTP server's requests in flight (bot.web.Activity), lets acks go before work."""
    client = web_client(settings)
    access = SlackAccess(inv.slack, client)
    workflow = Workflow(inv, daemon.engine, daemon.store, access=access, out=poster,
                        alert_channel=inv.slack.alert_channel or "", incidents=daemon,
                        phrasing=Phrasing(inv.slack.commands))
    return SlackContext(workflow, client, poster, access, activity=activity)


def build_app(ctx: SlackContext, settings: SlackSettingsEnv) -> App:
    try:
        app = App(client=ctx.client, signing_secret=settings.signing_secret or "socket-mode-unused",
                  process_before_response=False, token_verification_enabled=True)
    except SlackApiError as e:
        raise SlackSetupError(f"Slack refused SLACK_BOT_TOKEN ({e.response.get('error', 'error')})") from None
    except Exception as e:  # bolt wraps auth.test failures in its own error types
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise SlackSetupError(f"cannot start the Slack app: {first[:160]}") from None
    def inject(context: Any, next: Callable[[], None]) -> None:
        context[KEY] = ctx  # listeners are plain functions; they find lasthop here
        next()

    app.use(inject)
    register_all(app, ctx)
    return app


def http_handler(app: App, signing_secret: str) -> Route:
    """POST /slack/events for bot.web: the gate verifies and checks the request, then Bolt dispatches it."""
    def dispatch(body: bytes, headers: Mapping[str, str], query: str) -> tuple[int, dict[str, str], bytes]:
        # The gate let through only UTF-8 bodies signed over these very bytes.
        req = BoltRequest(body=body.decode("utf-8"), query=query,
                          headers={k.lower(): [v] for k, v in headers.items()})
        resp = app.dispatch(req)
        out_headers = {k: (v[0] if isinstance(v, list) and v else str(v)) for k, v in resp.headers.items()}
        return resp.status, out_headers, (resp.body or "").encode()
    return guarded(dispatch, signing_secret)


def start_socket_mode(app: App, settings: SlackSettingsEnv):  # type: ignore[no-untyped-def]
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    handler = SocketModeHandler(app, settings.app_token, web_client=WebClient(
        token=settings.app_token, base_url=settings.api_url, timeout=10))
    handler.connect()  # type: ignore[no-untyped-call]
    return handler
