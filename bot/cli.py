"""The `lasthop` command line. Subcommands parse, call into bot/ or lab/, and print.

Exit status: 0 done (or nothing to do), 1 refused or failed, 2 bad usage or bad config.
"""

from __future__ import annotations

import argparse
import getpass
import importlib.util
import json
import os
import re
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import __version__

if TYPE_CHECKING:
    from bot.console import LabHooks

OK, FAILED, USAGE = 0, 1, 2
NOT_CONFIRMED = {False: "Nothing changed.", True: "Refused: not confirmed (no terminal to ask on; use --yes)"}


def build_parser() -> argparse.ArgumentParser:
    from bot.config import CONFIG_ORDER

    config_help = f"the inventory file; default: {CONFIG_ORDER.removeprefix('--config FILE, else ')}"
    parser = argparse.ArgumentParser(
        prog="lasthop",
        description="Keep web sites up by moving VIP routes on the last-hop router.",
        epilog=f"The inventory is found by one rule: {CONFIG_ORDER}. --config may go before or after the command.",
    )
    parser.add_argument("--version", action="version", version=f"lasthop {__version__}")
    parser.add_argument("--config", type=Path, metavar="FILE", help=config_help)
    # The same option after the command (`lasthop status --config F`); SUPPRESS keeps one given before it.
    config = argparse.ArgumentParser(add_help=False)
    config.add_argument("--config", type=Path, metavar="FILE", default=argparse.SUPPRESS, help=config_help)
    sub = _ConfigSubparsers(parser.add_subparsers(dest="command", metavar="COMMAND"), config)
    sub.required = True

    p = sub.add_parser("check-config", help="validate the inventory; --connect also logs in to every device")
    p.add_argument("--connect", action="store_true", help="log in to every router and host and check loopbacks")

    p = sub.add_parser("status", help="who serves what, read live from the routers")
    p.add_argument("target", nargs="?", help="a service or host to show alone")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-loopback", action="store_true", help="skip the SSH check of each serving host's VIPs")

    p = sub.add_parser("failover", help="move a service, a prefix, or everything a host serves")
    p.add_argument("target", help="service name, VIP prefix (or an address in it), or host name to drain")
    p.add_argument("--to", dest="to_host", metavar="HOST", help="the host to move to (default: first healthy)")
    p.add_argument("--dry-run", action="store_true", help="plan and pre-check only; change nothing")
    p.add_argument("--yes", action="store_true", help="do not ask before acting")
    p.add_argument("--accept-risk", action="store_true",
                   help="run a plan the policy calls risky without a second person (audited as such)")

    sub.add_parser("reconcile", help="settle changes a dead process left half done, against the live routers")

    p = sub.add_parser("serve", help="run checks, incidents and automatic moves until SIGTERM")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")),
                   help="HTTP port for /healthz and /metrics (default $PORT or 8080; 0 disables)")
    p.add_argument("--bind", default="127.0.0.1", help="HTTP address (default 127.0.0.1)")
    p.add_argument("--instance", default=os.environ.get("LASTHOP_INSTANCE") or None,
                   help="this instance's name among several on one PostgreSQL store, shown as the leader "
                        "(default $LASTHOP_INSTANCE, else HOSTNAME:PID)")

    p = sub.add_parser("console", help="the chat workflow in this terminal: alerts, commands, buttons by number")
    p.add_argument("--user", default=None, help="who you are in the console (default: your login name)")
    p.add_argument("--script", metavar="FILE",
                   help="read the console's input from FILE ('-': stdin) and stop at its end")
    p.add_argument("--lab", metavar="PREFIX",
                   help="the lab that /lasthop lab break|heal|client acts on (default: the inventory's own lab)")

    p = sub.add_parser("demo", help="bring the lab up and run the console on it: the phone flow, step by step",
                       description="Brings the lab up if it is not (needs root), then runs the console on the "
                                   "lab's own inventory with a guide to the story: break a host, tap Fail over, "
                                   "heal, fail back; automatic failover is a switch (auto on|off).")
    p.add_argument("--prefix", default="lh", help="the lab's name prefix (default lh)")
    p.add_argument("--slot", type=int, default=None,
                   help="mgmt net 198.18.SLOT.0/24 (default: the running lab's, else 0)")
    p.add_argument("--user", default=None, help="who you are in the console (default: your login name)")
    p.add_argument("--script", metavar="FILE",
                   help="read the console's input from FILE ('-': stdin) and stop at its end")
    p.add_argument("--auto", choices=["on", "off"], default="off",
                   help="automatic failover at start (default off, so the buttons are seen; switch with auto on)")

    p = sub.add_parser("maintenance", help="take a host out of service (drain, silence) or put it back")
    p.add_argument("host")
    p.add_argument("state", choices=["on", "off"])
    p.add_argument("--for", dest="duration", metavar="DURATION",
                   help="end by itself after DURATION, with its unit: 10m, 2h, 30s (1m to 7 days)")
    p.add_argument("--reason", default="")
    p.add_argument("--yes", action="store_true", help="do not ask before draining")
    p.add_argument("--accept-risk", action="store_true", help="drain even if the plan is risky (audited)")

    p = sub.add_parser("history", help="the audit log, newest first")
    p.add_argument("--limit", type=int, default=20)

    p = sub.add_parser("slack-manifest", help="print the Slack app's manifest (YAML) for the inventory's commands")
    p.add_argument("--mode", choices=["socket", "http"], default="socket", help="how Slack reaches lasthop")
    p.add_argument("--url", help="HTTP mode: the public https://HOST/slack/events address")

    p = sub.inner.add_parser("bench", add_help=False,  # bench reads no inventory; its own --help
                             help="run a benchmark (bench/ of a lasthop checkout): bench NAME, --list, render")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="as for python -m bench")

    from lab import cli as lab_cli

    lab_cli.add_parser(sub.inner)  # the lab reads no inventory
    return parser


class _ConfigSubparsers:
    """add_parser that gives every lasthop command the --config option too."""

    def __init__(self, inner: Any, config: argparse.ArgumentParser) -> None:
        self.inner = inner
        self.config = config

    @property
    def required(self) -> bool:
        return bool(self.inner.required)

    @required.setter
    def required(self, value: bool) -> None:
        self.inner.required = value

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self.inner.add_parser(name, parents=[self.config], **kwargs)
        return parser


# Commands that log in to routers or hosts, so they need key_file and known_hosts to be there.
# history, slack-manifest, check-config without --connect and maintenance off read only the files.
def _logs_in(args: argparse.Namespace) -> bool:
    if args.command == "check-config":
        return bool(args.connect)
    if args.command == "maintenance":
        return bool(args.state == "on")
    return args.command in ("status", "failover", "reconcile", "serve", "console")


def _actor() -> str:
    return os.environ.get("SUDO_USER") or getpass.getuser()


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["bench"]:
        # Straight through: the benchmark's own options (--list, --tiny, ...) are not lasthop's.
        return _bench(given[1:])
    parser = build_parser()
    args = parser.parse_args(given)
    if args.command == "bench":
        return _bench(args.bench_args)
    from bot import faults

    try:
        faults.arm_from_env()  # tests only: LASTHOP_FAULTS names the fault points to act on
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return USAGE
    if args.command == "lab":
        from lab import cli as lab_cli

        return lab_cli.run(args)
    if args.command == "slack-manifest":
        return _slack_manifest(args)
    if args.command == "demo":
        return _demo(args)
    from bot.config import ConfigError, load_inventory

    try:
        inv = load_inventory(args.config, defer_files=True)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return USAGE
    for w in inv.warnings:
        print(f"warning: {w.format(inv.source.name)}", file=sys.stderr)
    if inv.file_issues:
        if _logs_in(args):
            for issue in inv.file_issues:
                print(issue.format(inv.source.name), file=sys.stderr)
            what = {"check-config": "check-config --connect", "maintenance": "maintenance on"}.get(args.command,
                                                                                                args.command)
            print(f"lasthop {what} logs in to devices and needs {_them(inv.file_issues)}; "
                  "nothing was done", file=sys.stderr)
            return USAGE
        if args.command == "check-config":
            for issue in inv.file_issues:
                print(f"warning: {issue.format(inv.source.name)} (needed by the commands that log in: status, "
                      "failover, reconcile, serve, console, maintenance on, check-config --connect)", file=sys.stderr)
    if args.command == "check-config":
        return _check_config(inv, args.connect)

    from bot.engine.pipeline import Engine
    from bot.state import StateStore
    from bot.state.errors import StateError

    try:
        store = StateStore(inv.state_url)
    except StateError as e:
        print(f"state database {inv.state_url_redacted}: {e}", file=sys.stderr)
        return FAILED
    engine = Engine(inv, store, probe_source=inv.probe.source, probe_vips=inv.probe.verify_vips)
    try:
        if args.command == "status":
            return _status(engine, args)
        if args.command == "failover":
            return _failover(engine, args)
        if args.command == "serve":
            return _serve(engine, store, args)
        if args.command == "console":
            return _console(engine, store, args)
        if args.command == "maintenance":
            return _maintenance(engine, args)
        if args.command == "reconcile":
            return _reconcile(engine)
        if args.command == "history":
            from bot.render import history_text

            print(history_text(store.history(limit=max(1, args.limit))))
            return OK
    finally:
        engine.close()
        store.close()
    parser.error(f"unknown command {args.command!r}")
    return USAGE


def _bench(argv: list[str]) -> int:
    """The benchmarks live in the source tree (bench/ beside bot/), not in the installed package:
    importable when lasthop runs from a checkout, or from the checkout's top directory."""
    if importlib.util.find_spec("bench") is None and (Path.cwd() / "bench" / "__init__.py").is_file():
        sys.path.insert(0, str(Path.cwd()))
    try:
        from bench.cli import main as bench_main
    except ImportError as e:
        print(f"lasthop bench needs a lasthop checkout: the bench package is not importable here ({e}). "
              "Run it from the repository's top directory (where bench/ is), or `python -m bench` there.",
              file=sys.stderr)
        return USAGE
    return bench_main(argv)


def _reconcile(engine: object) -> int:
    from bot.engine.pipeline import Engine

    assert isinstance(engine, Engine)
    settled = engine.reconcile()
    for s in settled:
        print(f"reconciled: {s}")
    if not settled:
        print("nothing to settle: no change is in flight")
    # A change left open or handed to a person is not settled: a script should know.
    return OK if all(s.outcome in ("done", "rolled_back", "failed") for s in settled) else FAILED


def _them(issues: Sequence[object]) -> str:
    return "that file" if len(issues) == 1 else "those files"


def _slack_manifest(args: argparse.Namespace) -> int:
    from collections.abc import Mapping

    from bot.commands import CommandNames
    from bot.config import ConfigError, NoConfigError, config_path, load_inventory
    from bot.manifest import manifest_yaml

    class AnySecret(Mapping[str, str]):
        # The manifest needs the command names, not the devices' passwords: any ${VAR} will do.
        def __getitem__(self, key: str) -> str:
            return "unused"

        def __iter__(self) -> Iterator[str]:
            return iter(())

        def __len__(self) -> int:
            return 0

    note = None
    try:
        path = config_path(args.config)
        names = load_inventory(path, AnySecret(), check_files=False).slack.commands
    except NoConfigError:
        problem = "no inventory found (lasthop check-config says where it looked)"
        names = CommandNames()
        note = f"lasthop slack-manifest: {problem}; using the default command names"
    except ConfigError as e:
        problem = str(e) if len(e.errors) == 1 else f"{e.source}: {len(e.errors)} problems (check-config lists them)"
        note = f"lasthop slack-manifest: {problem}; using the default command names"
        names = CommandNames()
    try:
        text = manifest_yaml(names, mode=args.mode, request_url=args.url)
    except ValueError as e:
        print(f"lasthop slack-manifest: {e}", file=sys.stderr)
        return USAGE
    if note is not None:
        print(note, file=sys.stderr)
    print(text, end="")
    return OK


def _check_config(inv: object, connect: bool) -> int:
    from bot.drivers import make_router_driver
    from bot.drivers.errors import DriverError
    from bot.drivers.host import HostVerifier
    from bot.inventory import Inventory

    assert isinstance(inv, Inventory)
    print(inv.describe())
    if not connect:
        return OK
    bad = 0
    for r in inv.routers.values():
        try:
            with make_router_driver(r.driver, r.ssh, revert_seconds=r.revert_seconds) as d:
                n = len(d.get_static_routes())
            print(f"router {r.name}: reachable, host key ok, {n} static routes")
        except DriverError as e:
            bad += 1
            print(f"router {e}")
    for h in inv.hosts.values():
        vips = sorted({v for s in inv.services.values() if h.name in s.hosts for v in s.vips})
        verifier = HostVerifier(h.ssh)
        try:
            check = verifier.check_vips(vips)
        except DriverError as e:
            bad += 1
            print(f"host {e}")
            continue
        finally:
            verifier.close()
        missing = ", ".join(map(str, check.missing))
        print(f"host {h.name}: reachable, host key ok, " + (f"MISSING on lo: {missing}" if missing else
                                                             f"all {len(vips)} VIPs on lo"))
        bad += bool(check.missing)
        for w in check.warnings:
            print(f"  note: {w}")
    return FAILED if bad else OK


def _status(engine: object, args: argparse.Namespace) -> int:
    from bot.engine.pipeline import Engine
    from bot.render import status_text
    from bot.status import collect_status

    assert isinstance(engine, Engine)
    only = None
    if args.target:
        try:
            _, only = engine.inv.resolve(args.target)
        except LookupError as e:
            print(str(e), file=sys.stderr)
            return USAGE
    view = collect_status(engine, only=only, loopback=not args.no_loopback)
    print(json.dumps(view.to_dict(), indent=2) if args.json else status_text(view))
    return FAILED if any(r.error for r in view.rows) else OK


def _ask(question: str) -> bool | None:
    """y/N on the terminal; None when there is no terminal to ask on."""
    if not sys.stdin.isatty():
        return None
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _show(answer: object) -> None:
    from bot import plain
    from bot.chat import Answer

    assert isinstance(answer, Answer)
    print(plain.render(answer.message, buttons=False))


def _failover(engine: object, args: argparse.Namespace) -> int:
    from bot.chat import Actor
    from bot.commands import FailoverCommand
    from bot.engine.pipeline import Engine
    from bot.workflow import Workflow

    assert isinstance(engine, Engine)
    try:
        engine.inv.resolve(args.target)
        if args.to_host and engine.inv.resolve(args.to_host)[0] != "host":
            raise LookupError(f"--to takes a host, and {args.to_host} is a service")
    except LookupError as e:
        print(str(e).strip("'\""), file=sys.stderr)
        return USAGE
    for note in engine.reconcile():
        print(f"reconciled: {note}")
    # The same workflow as chat: plan, risk, then a confirmation, which here is a question.
    workflow = Workflow(engine.inv, engine, engine.store)
    actor = Actor(_actor(), "cli")
    answer = workflow.request(actor, FailoverCommand(args.target, args.to_host, args.dry_run),
                              accept_risk=args.accept_risk)
    _show(answer)
    if answer.offer is None:
        return OK if answer.ok else FAILED
    if not args.yes:
        yes = _ask("Proceed?")
        if not yes:
            workflow.cancel(actor, answer.offer.approval_id)
            print(NOT_CONFIRMED[yes is None])
            return FAILED
    result = workflow.confirm(actor, answer.offer.approval_id, accept_risk=args.accept_risk)
    _show(result)
    return OK if result.ok else FAILED


def _serve(engine: object, store: object, args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading

    from bot.chat import ChatOut
    from bot.engine.pipeline import Engine
    from bot.notify import LogOut
    from bot.serve import Daemon, probe_source_note
    from bot.state import StateError, StateStore
    from bot.views import Phrasing
    from bot.web import Activity, make_server, serve_in_background
    from handlers.app import (
        SlackSetupError,
        build_app,
        http_handler,
        poster_client,
        settings_from_env,
        slack_context,
        start_socket_mode,
    )
    from handlers.poster import Poster

    assert isinstance(engine, Engine) and isinstance(store, StateStore)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # APScheduler logs INFO lines for every run of the periodic jobs; lasthop logs what matters.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    logging.getLogger("paramiko").setLevel(logging.WARNING)  # one INFO line per SSH login
    inv = engine.inv
    try:
        slack = settings_from_env()
    except SlackSetupError as e:
        print(f"lasthop serve: {e}", file=sys.stderr)
        return USAGE
    out: ChatOut = LogOut()
    channel = "log"
    poster = None
    if slack is None:
        print("lasthop serve: no Slack settings (SLACK_BOT_TOKEN unset): alerts go to this log", flush=True)
    else:
        poster = Poster(poster_client(slack))
        if inv.slack.alert_channel:
            out, channel = poster, inv.slack.alert_channel
        else:
            print("lasthop serve: slack.alert_channel is not set: alerts go to this log", flush=True)
    print(f"lasthop serve: {len(inv.services)} services, {len(inv.hosts)} hosts; "
          f"{probe_source_note(inv.probe.source)}", flush=True)
    phrasing = Phrasing(inv.slack.commands)
    instance = _instance_name(args.instance)
    if instance is None:
        print("lasthop serve: --instance takes 1-64 letters, digits and . _ : - (it names this instance "
              "in status and logs)", file=sys.stderr)
        return USAGE
    daemon = Daemon(inv, store, out, channel=channel, phrasing=phrasing, instance=instance)
    routes = {}
    socket_handler = None
    ctx = None
    activity = Activity()  # the web server's requests in flight: Slack work lets their acks go first
    if slack is not None and poster is not None:
        ctx = slack_context(inv, daemon, poster, slack, activity)
        try:
            app = build_app(ctx, slack)
            if slack.socket_mode:
                socket_handler = start_socket_mode(app, slack)
                print("lasthop serve: Slack connected over Socket Mode", flush=True)
            else:
                routes["/slack/events"] = http_handler(app, slack.signing_secret or "")
        except SlackSetupError as e:
            print(f"lasthop serve: {e}", file=sys.stderr)
            ctx.close()
            return FAILED
    stopping = threading.Event()
    server = None
    if args.port:
        try:
            server = make_server(args.bind, args.port, daemon.metrics, lambda: not stopping.is_set(), routes,
                                 activity=activity)
        except OSError as e:
            print(f"lasthop serve: cannot listen on {args.bind}:{args.port}: {e.strerror or e}", file=sys.stderr)
            return FAILED
        serve_in_background(server)
        extra = " and POST /slack/events" if routes else ""
        print(f"lasthop serve: /metrics, /healthz{extra} on http://{args.bind}:{args.port}", flush=True)

    def on_signal(signum: int, frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        daemon.start()
    except StateError as e:  # SQLite another serve runs on, a pooler in the way: nothing was started
        print(f"lasthop serve: {e}", file=sys.stderr)
        stopping.set()
        code = FAILED
    else:
        code = OK
        role = "leads" if daemon.leading() else "follows (another instance leads; this one answers chat)"
        print(f"lasthop serve: instance {instance} {role}", flush=True)
    stopping.wait()
    print("lasthop serve: stopping (a move in progress is finished first)", flush=True)
    if socket_handler is not None:
        socket_handler.close()
    daemon.stop()
    if ctx is not None:
        ctx.close()
    elif poster is not None:
        poster.close()
    if server is not None:
        server.shutdown()
        server.server_close()
    print("lasthop serve: stopped", flush=True)
    return code


def _instance_name(given: str | None) -> str | None:
    """The instance's name: as given when it is a plain name (it reaches logs and chat), else None."""
    if given is None:
        return f"{socket.gethostname()}:{os.getpid()}"
    return given if re.fullmatch(r"[A-Za-z0-9._:-]{1,64}", given) else None


def _maintenance(engine: object, args: argparse.Namespace) -> int:
    from bot.chat import Actor
    from bot.commands import MaintenanceCommand, UsageError, maintenance_duration
    from bot.engine.pipeline import Engine
    from bot.workflow import Workflow

    assert isinstance(engine, Engine)
    inv = engine.inv
    if args.host not in inv.hosts:
        print(f"unknown host {args.host!r} (known: {', '.join(sorted(inv.hosts))})", file=sys.stderr)
        return USAGE
    duration = None
    if args.duration is not None:
        if args.state == "off":
            print("--for goes with on: maintenance off ends it now", file=sys.stderr)
            return USAGE
        try:
            duration = maintenance_duration(args.duration.strip())
        except UsageError as e:
            print(f"--for {str(e).removeprefix('a duration ')} (got {args.duration.strip()!r})"
                  if str(e).startswith("a duration ") else f"--for: {e}", file=sys.stderr)
            return USAGE
    workflow = Workflow(inv, engine, engine.store)
    actor = Actor(_actor(), "cli")
    cmd = MaintenanceCommand(args.host, args.state == "on", duration, args.reason)
    answer = workflow.maintenance(actor, cmd, accept_risk=args.accept_risk)
    _show(answer)
    if answer.offer is not None:  # the drain comes first, and needs a yes
        if not args.yes:
            yes = _ask("Drain and start maintenance?")
            if not yes:
                workflow.audit_refusal(actor, "maintenance", args.host, "not confirmed" if yes is not None
                                       else "not confirmed: no terminal to ask on")
                print(NOT_CONFIRMED[yes is None])
                return FAILED
        answer = workflow.maintenance(actor, cmd, confirmed=True, accept_risk=args.accept_risk)
        _show(answer)
    return OK if answer.ok else FAILED


def _console(engine: object, store: object, args: argparse.Namespace) -> int:
    from bot.engine.pipeline import Engine

    assert isinstance(engine, Engine)
    return _console_session(engine, store, user=args.user or _actor(), lab=_lab_of(engine.inv.source, args.lab),
                            script=args.script)


def _console_session(engine: object, store: object, *, user: str, lab: LabHooks | None, script: str | None,
                     auto: bool | None = None, guide: str = "") -> int:
    """The console on `engine`'s inventory; `auto` sets automatic failover at start (None: as the inventory says)."""
    from bot.console import CHANNEL, Console, ConsoleOut, auto_text
    from bot.engine.pipeline import Engine
    from bot.serve import Daemon
    from bot.state import StateError, StateStore
    from bot.views import Phrasing
    from bot.workflow import Workflow

    assert isinstance(store, StateStore) and isinstance(engine, Engine)
    inv = engine.inv
    out = ConsoleOut()
    phrasing = Phrasing(inv.slack.commands)
    # On a shared store the console is one more instance: it checks and moves only if it is elected,
    # so that it never acts beside a serve that leads.
    instance = f"console-{re.sub(r'[^A-Za-z0-9._-]', '_', user)[:24]}@{socket.gethostname()}:{os.getpid()}"
    daemon = Daemon(inv, store, out, channel=CHANNEL, phrasing=phrasing,
                    instance=instance if store.shared else None)
    if auto is not None:
        daemon.auto.set_auto(auto)  # how this run starts, not a person's change: said below, not audited
    workflow = Workflow(inv, daemon.engine, store, out=out, alert_channel=CHANNEL, incidents=daemon,
                        phrasing=phrasing)
    console = Console(workflow, out, user=user, lab=lab, auto=daemon)
    out.say(f"lasthop console: {len(inv.services)} services, {len(inv.hosts)} hosts; you are {console.user}. "
            "Type help, or /lasthop status.")
    out.say(auto_text(daemon.auto_on()))
    if guide:
        out.say(guide)
    daemon.on_ready = lambda: out.say("lasthop: every host has been checked: ready")
    try:
        daemon.start()
    except StateError as e:  # a pooler in the way of the shared store: nothing was started
        print(f"lasthop console: {e}", file=sys.stderr)
        daemon.stop()
        return FAILED
    if not daemon.leading():
        lead = store.leader()
        who = lead.instance if lead is not None and lead.leading else "another instance"
        out.say(f"lasthop: {who} leads and runs the checks; this console follows: commands and buttons "
                "work here, and alerts come from the leader")
    try:
        if script and script != "-":
            with open(script, encoding="utf-8") as f:
                return console.run(f)
        return console.run(_console_lines(console))
    except KeyboardInterrupt:
        return OK
    finally:
        daemon.stop()


def _demo(args: argparse.Namespace) -> int:
    from bot.config import ConfigError, load_inventory
    from bot.demo import guide, prepare_lab
    from bot.engine.pipeline import Engine
    from bot.state import StateStore
    from bot.state.errors import StateError
    from lab.errors import LabError
    from lab.lab import Lab

    if args.config is not None:
        print("lasthop demo: --config is not used: the demo runs on the lab's own inventory", file=sys.stderr)
    try:
        lab = prepare_lab(args.prefix, args.slot, lambda line: print(line, flush=True))
    except LabError as e:
        print(f"lasthop demo: {e}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        lab_opt = "" if args.prefix == "lh" else f" --prefix {args.prefix}"
        print(f"lasthop demo: interrupted; sudo lasthop lab up{lab_opt} finishes the lab, "
              f"sudo lasthop lab down{lab_opt} removes it", file=sys.stderr)
        return 130
    try:
        inv = load_inventory(lab.inventory)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return USAGE
    try:
        store = StateStore(inv.state_url)
    except StateError as e:
        print(f"state database {inv.state_url_redacted}: {e}", file=sys.stderr)
        return FAILED
    engine = Engine(inv, store, probe_source=inv.probe.source, probe_vips=inv.probe.verify_vips)
    hooks = Lab(lab.plan.prefix, lab.plan.slot, report=lambda message: None)  # the console says what it did
    try:
        return _console_session(engine, store, user=args.user or _actor(), lab=hooks, script=args.script,
                                auto=args.auto == "on", guide=guide(lab.plan.prefix))
    finally:
        engine.close()
        store.close()


def _lab_of(inventory: Path, prefix: str | None) -> LabHooks | None:
    """The lab named, or the one whose inventory this is (`lab up` writes it in the lab's state folder)."""
    from lab.lab import Lab
    from lab.state import DEFAULT_STATE_ROOT, StatePaths, recorded_slot

    folder = inventory.resolve().parent
    if prefix is None and folder.parent == Path(DEFAULT_STATE_ROOT).resolve():
        prefix = folder.name
    if prefix is None or os.geteuid() != 0:
        return None
    slot = recorded_slot(StatePaths(DEFAULT_STATE_ROOT, prefix))
    return Lab(prefix, slot, report=lambda message: None) if slot is not None else None


def _console_lines(console: object) -> Iterator[str]:
    from bot.console import Console

    assert isinstance(console, Console)
    if not sys.stdin.isatty():
        yield from sys.stdin
        return
    while True:
        try:
            yield input(f"{console.user}> ")
        except EOFError:
            return


if __name__ == "__main__":
    sys.exit(main())
