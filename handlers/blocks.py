"""Block Kit for phones: short lines, the important word first, buttons under 30 characters.

Rendering only: every decision was made by the engine; this turns its data into blocks.
"""

from __future__ import annotations

from typing import Any

from bot.engine.model import Outcome, Plan
from bot.status import StatusView

Block = dict[str, Any]
ICON = {"up": ":large_green_circle:", "down": ":red_circle:", "falling": ":large_yellow_circle:",
        "rising": ":large_yellow_circle:", "init": ":white_circle:", "disabled": ":wrench:"}


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def button(label: str, action_id: str, value: str, *, style: str | None = None,
           confirm: tuple[str, str, str] | None = None) -> Block:
    b: Block = {"type": "button", "text": {"type": "plain_text", "text": label[:30]}, "action_id": action_id,
                "value": value}
    if style:
        b["style"] = style
    if confirm:
        title, text, yes = confirm
        b["confirm"] = {"title": {"type": "plain_text", "text": title[:100]},
                        "text": {"type": "mrkdwn", "text": text[:300]},
                        "confirm": {"type": "plain_text", "text": yes[:30]},
                        "deny": {"type": "plain_text", "text": "Cancel"}}
    return b


def actions(*buttons: Block) -> Block:
    return {"type": "actions", "elements": list(buttons)}


def status_lines(view: StatusView) -> list[str]:
    lines = []
    for r in view.rows:
        served = r.host or ("?" if r.error else "no single host")
        lo = "" if r.loopback is None else (" lo ok" if r.loopback else " *VIP missing on lo*")
        mark = " :warning: drift" if r.drift else ""
        err = f" :x: {r.error}" if r.error else ""
        lines.append(f"{ICON.get(r.health, '')} *{r.service}* → {served} ({r.health}){lo}{mark}{err}")
    return lines


def status_blocks(view: StatusView, *, offer_post: bool = True) -> list[Block]:
    blocks = [section("\n".join(status_lines(view)) or "No services.")]
    notes = [r.drift for r in view.rows if r.drift] + view.notes
    if notes:
        blocks.append(context("\n".join(f":warning: {n}" for n in notes)))
    if offer_post:
        blocks.append(actions(button("Post to channel", "status_post", "all")))
    return blocks


def plan_text(plan: Plan) -> str:
    lines = [f"*Plan* ({plan.request.target}):"] + [f"• {s}" for s in plan.summary]
    for router, commands in plan.commands.items():
        lines.append(f"_Commands on {router}:_\n```" + "\n".join(commands) + "```")
    if plan.risks:
        lines.append("*Needs approval:*\n" + "\n".join(f"• {r.text}" for r in plan.risks))
    return "\n".join(lines)


def confirm_blocks(plan: Plan, approval_id: str) -> list[Block]:
    question = f"Move {', '.join(m.service for m in plan.moves)} now?"
    return [
        section(plan_text(plan)),
        actions(
            button("Confirm move", "failover_confirm", approval_id, style="primary",
                   confirm=("Move traffic?", question, "Move")),
            button("Cancel", "failover_cancel", approval_id),
        ),
    ]


def approval_blocks(plan: Plan, approval_id: str, requester: str, minutes: int) -> list[Block]:
    return [
        section(f":raised_hand: <@{requester}> asks to move traffic. Approval needed within {minutes} min.\n"
                + plan_text(plan)),
        actions(
            button("Approve", "approval_approve", approval_id, style="primary",
                   confirm=("Approve this move?", "Pre-checks run again before anything changes.", "Approve")),
            button("Deny", "approval_deny", approval_id, style="danger"),
        ),
    ]


HEAD = {"done": ":white_check_mark: Done", "dry-run": ":mag: Dry run: nothing changed",
        "noop": ":information_source: Nothing to do", "refused": ":no_entry: Refused",
        "rolled_back": ":leftwards_arrow_with_hook: Failed and rolled back", "failed": ":x: Failed",
        "needs_human": ":rotating_light: FAILED and rollback failed: a human is needed now"}


def outcome_text(outcome: Outcome, *, by: str = "") -> str:
    lines = [HEAD[outcome.status] + (f" ({by})" if by else "")]
    lines += [f"• {line}" for line in outcome.lines]
    if outcome.timings_ms:
        lines.append("_" + ", ".join(f"{k.removesuffix('_ms')} {v} ms" for k, v in outcome.timings_ms.items()) + "_")
    return "\n".join(lines)


def outcome_blocks(outcome: Outcome, *, by: str = "", plan: Plan | None = None) -> list[Block]:
    blocks = [section(outcome_text(outcome, by=by))]
    if plan is not None:
        blocks.append(context("\n".join(plan.summary)))
    return blocks
