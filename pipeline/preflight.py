"""What a run may do with its plan: send, hold (outside the window), or refuse."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline import schedule
from pipeline.amoot import Account
from pipeline.config import Config
from pipeline.errors import PipelineError, ProviderFatal, Refused
from pipeline.models import RunOptions
from pipeline.plan import Plan
from pipeline.send import Sender


@dataclass(frozen=True, slots=True)
class Verdict:
    """The check's answer: only `send` lets the sending pass post anything."""

    send: bool
    hold: str = ""  # why the rows to send are held back (`pending`), when they are
    stopped: PipelineError | None = None  # refused (stale, credit, max_cost): exit 3
    account: Account | None = None  # AccountStatus, when it was asked


def check(
    config: Config,
    options: RunOptions,
    timing: schedule.Decision,
    plan: Plan,
    sender: Sender | None,
) -> Verdict:
    """The preflight on the plan's exact cost; a dry run asks only the in-process sandbox."""
    hold = "" if timing.send else timing.reason
    if options.dry_run:
        return Verdict(False, hold, account=sender.account_status() if sender else None)
    if timing.stale:
        return Verdict(False, hold, Refused("stale", timing.reason))
    if not timing.send:
        return Verdict(False, hold)
    if not (config.provider.preflight and sender is not None and plan.messages):
        return Verdict(True)
    try:
        account = sender.account_status()
    except ProviderFatal as exc:  # nothing sent: the rows are reported `pending`
        return Verdict(False, stopped=exc)
    refused = fits(config, account, plan)
    return Verdict(refused is None, stopped=refused, account=account)


def fits(config: Config, account: Account, plan: Plan) -> Refused | None:
    """Why a run of `plan` must not start (exit 3, nothing sent), or None when it fits."""
    cost = plan.cost(account, config.provider.tariff)
    pages = sum(plan.pages.values())
    need = f"{plan.messages:,} messages, {pages:,} pages, about {tomans(cost)}"
    if cost > account.credit:
        return Refused(
            "CreditNotEnough",
            f"preflight: this run needs {need}; the account has {tomans(account.credit)}. "
            "Nothing was sent. Fix: top up the AmootSMS account, or send part with --limit N.",
        )
    max_cost = config.provider.max_cost
    if max_cost is not None and cost > max_cost * 10:
        return Refused(
            "max_cost",
            f"preflight: this run needs {need}, more than provider.max_cost "
            f"({max_cost:,.0f} tomans). Nothing was sent. Fix: raise max_cost, or use --limit N.",
        )
    return None


def tomans(rials: int) -> str:
    return f"{rials / 10:,.0f} tomans"
