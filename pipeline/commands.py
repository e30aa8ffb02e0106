"""The commands beside the run (`python -m pipeline NAME CONFIG|DIR ...`): parse, then hand over."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.config import load_config
from pipeline.init import init_command
from pipeline.replies import replies_command
from pipeline.settle import settle_command
from pipeline.status import status_command

Log = Callable[[str], None]

COMMANDS = {
    "init": "make a campaign folder that runs as it is (sandbox)",
    "status": "what the journal knows of the campaign; changes nothing",
    "replies": "read the line's new replies: 11 / لغو opt out, 12 opts back in",
    "settle": "close the campaign's `unknown` rows after checking the panel",
}
USAGE = """\
python -m pipeline CONFIG [flags]           send the campaign (see the flags below)
       python -m pipeline init DIR
       python -m pipeline status CONFIG [--json]
       python -m pipeline replies CONFIG [-q]
       python -m pipeline settle CONFIG --as sent|unsent [--numbers FILE]"""
LISTED = "commands:\n" + "\n".join(f"  {name:<9}{what}" for name, what in COMMANDS.items())


def command_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipeline")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    init = commands.add_parser("init", help=COMMANDS["init"], description=COMMANDS["init"])
    init.add_argument(
        "dir", type=Path, metavar="DIR", help="the new folder (made with its parents if missing)"
    )
    status = commands.add_parser("status", help=COMMANDS["status"], description=COMMANDS["status"])
    status.add_argument("config", type=Path, help="the campaign's config.yaml")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    replies = commands.add_parser(
        "replies", help=COMMANDS["replies"], description=COMMANDS["replies"]
    )
    replies.add_argument("config", type=Path, help="the campaign's config.yaml")
    replies.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print nothing when it ends with exit 0 (for cron: the opt-outs are already on "
        "the suppression list); otherwise all it said and the error",
    )
    settle = commands.add_parser("settle", help=COMMANDS["settle"], description=COMMANDS["settle"])
    settle.add_argument("config", type=Path, help="the campaign's config.yaml")
    settle.add_argument(
        "--as",
        dest="as_state",
        required=True,
        choices=("sent", "unsent"),
        help="sent: the panel shows them sent (never sent again); unsent: the next run sends them",
    )
    settle.add_argument(
        "--numbers",
        type=Path,
        metavar="FILE",
        help="settle only the numbers in FILE (one a line, any format); default: every unknown row",
    )
    return parser


def _quietly(command: Callable[[Log, Log], int], out: Log, log: Log) -> int:
    """-q: what `command` says is held back; shown, in order, only if it does not end with
    exit 0 (cron mails any output, and a run that did its job needs no mail)."""
    held: list[tuple[Log, str]] = []
    try:
        code = command(lambda line: held.append((out, line)), lambda line: held.append((log, line)))
    except BaseException:
        for say, line in held:  # before the error, which the caller prints
            say(line)
        raise
    if code != 0:
        for say, line in held:
            say(line)
    return code


def run_command(argv: Sequence[str], *, out: Log, log: Log) -> int:
    """One command; its errors propagate to the caller, which prints them once."""
    args = command_parser().parse_args(argv)
    if args.command == "init":  # the one command without a config: it makes one
        return init_command(args.dir, out=out)
    config = load_config(args.config)
    if args.command == "status":
        return status_command(config, as_json=args.json, out=out)
    if args.command == "replies":
        if not args.quiet:
            return replies_command(config, out=out, log=log)
        return _quietly(lambda say, warn: replies_command(config, out=say, log=warn), out, log)
    return settle_command(config, as_state=args.as_state, numbers=args.numbers, out=out)
