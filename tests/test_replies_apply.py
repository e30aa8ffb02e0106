"""Replies kept and applied: the journal's replies table, the opt-out list's edits (11 on,
12 off only for the lines written for a reply), the order, the claim, the CSV."""

from __future__ import annotations

import csv
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.errors import ProviderFatal
from pipeline.inbox import (
    ALREADY_LISTED,
    BAD_NUMBER,
    CHECK_OPTOUT,
    LIVE,
    NO_LIST,
    NOT_LISTED,
    OPTED_IN,
    OPTED_OUT,
    OPTIN_KEPT,
    OTHER,
    SANDBOX,
    apply_saved,
    honour_replies,
    reply_optouts,
)
from pipeline.journal import Journal, Reply
from pipeline.phones import normalise_mobile
from pipeline.suppression import edit_list, list_lock, load_suppression
from tests.conftest import REPO

NOW = datetime(2026, 12, 2, 6, 45, tzinfo=UTC)  # 10:15 in Tehran


def clock() -> datetime:
    return NOW


@dataclass(frozen=True)
class SMS:
    """What amoot.InboundSMS carries."""

    message_id: str
    mobile: str
    text: str
    received_at: str = "2026-12-02T10:10:00"


def reply(message_id: str, mobile: str, text: str, received_at: str = "") -> Reply:
    number = normalise_mobile(mobile)
    number = number if isinstance(number, str) else ""
    return Reply(LIVE, message_id, mobile, number, text, received_at, NOW.isoformat())


def answers(*batches: list[SMS] | ProviderFatal):
    """A `receive` that hands out `batches` in turn (then nothing), or raises one that is an
    error; it records each Count asked."""
    queue = list(batches)
    asked: list[int] = []

    def receive(count: int) -> list[SMS]:
        asked.append(count)
        if not queue:
            return []
        batch = queue.pop(0)
        if isinstance(batch, ProviderFatal):
            raise batch
        return batch

    receive.asked = asked  # type: ignore[attr-defined]
    return receive


@pytest.fixture
def journal(tmp_path: Path):
    with Journal.open(tmp_path / "journal.sqlite", "spring") as opened:
        yield opened


def test_a_reply_is_kept_once_by_its_id_and_one_without_id_by_its_content(
    journal: Journal,
) -> None:
    """INSERT OR IGNORE: the same ID again is not new; a reply without an ID gets a key from
    its mobile, text and time, so reading it again is not new either; scopes are apart."""
    assert journal.save_replies([reply("1", "09121234567", "11"), reply("", "0935", "سلام")]) == 2
    assert journal.save_replies([reply("1", "09121234567", "11 again")]) == 0
    assert journal.save_replies([reply("", "0935", "سلام")]) == 0
    assert journal.save_replies([reply("", "0935", "سلام", "2026-12-02T10:00:00")]) == 1
    sandbox = Reply(SANDBOX, "1", "09121234567", "09121234567", "11", "", NOW.isoformat())
    assert journal.save_replies([sandbox]) == 1
    kept = journal.unapplied_replies(LIVE)
    assert [r.text for r in kept] == ["11", "سلام", "سلام"]
    assert kept[1].message_id.startswith("content:")
    assert [r.seq for r in kept] == sorted(r.seq for r in kept)


def test_a_reply_is_claimed_once(journal: Journal) -> None:
    """The mark is `UPDATE ... WHERE action = ''`: a second claim of the same reply (another
    process applying at the same moment) claims nothing."""
    journal.save_replies([reply("1", "09121234567", "11")])
    assert journal.mark_replies(LIVE, [("1", OPTED_OUT, "")]) == {"1"}
    assert journal.mark_replies(LIVE, [("1", ALREADY_LISTED, "")]) == set()
    assert journal.unapplied_replies(LIVE) == []
    (kept,) = journal.applied_replies(LIVE, [OPTED_OUT])
    assert kept.action == OPTED_OUT


def test_opt_out_appends_the_reply_and_its_date(journal: Journal, tmp_path: Path) -> None:
    """An opt-out appends `number  # replied «text» on DATE Tehran` (the provider's time), the
    text flattened to one line; a number already listed is not listed twice."""
    listed = tmp_path / "optout.txt"
    listed.write_text("09350000000  # the operator\n09129999999", encoding="utf-8")  # no newline
    journal.save_replies([
        reply("1", "09121234567", "لغو۱۱", "2026-12-02T10:15:00"),
        reply("2", "+98 912 000 1111", "لغو\n۱۱\u2028", "2026-12-02T10:16:00"),
        reply("3", "09350000000", "11", "2026-12-02T10:17:00"),
    ])  # fmt: skip
    applied = apply_saved(journal, LIVE, listed, clock)
    assert [a.action for a in applied] == [OPTED_OUT, OPTED_OUT, ALREADY_LISTED]
    text = listed.read_text(encoding="utf-8")
    assert text.splitlines() == [
        "09350000000  # the operator",
        "09129999999",
        "09121234567  # replied «لغو۱۱» on 2026-12-02 10:15 Tehran",
        "09120001111  # replied «لغو ۱۱» on 2026-12-02 10:16 Tehran",
    ]
    assert load_suppression(listed, "optout.txt").numbers == {
        "09350000000", "09129999999", "09121234567", "09120001111",
    }  # fmt: skip


def test_twelve_after_eleven_takes_it_off_but_an_operator_listed_number_stays(
    journal: Journal, tmp_path: Path
) -> None:
    """12 removes only the lines the pipeline wrote for that number's replies; a number the
    operator or the provider listed stays listed (optin_kept); 12 from a number not listed
    changes nothing. The rewrite keeps the file's mode and its other lines byte for byte."""
    listed = tmp_path / "optout.txt"
    listed.write_text("\ufeff09350000000 - لغو تلفنی\r\n", encoding="utf-8")
    listed.chmod(0o640)
    journal.save_replies([
        reply("1", "09121234567", "11", "2026-12-02T10:00:00"),
        reply("2", "09350000000", "11", "2026-12-02T10:01:00"),
    ])  # fmt: skip
    apply_saved(journal, LIVE, listed, clock)
    journal.save_replies([
        reply("3", "09121234567", "۱۲", "2026-12-02T11:00:00"),
        reply("4", "09350000000", "12", "2026-12-02T11:01:00"),
        reply("5", "09190000000", "12", "2026-12-02T11:02:00"),
    ])  # fmt: skip
    applied = apply_saved(journal, LIVE, listed, clock)
    assert [(a.reply.number, a.action) for a in applied] == [
        ("09121234567", OPTED_IN),
        ("09350000000", OPTIN_KEPT),
        ("09190000000", NOT_LISTED),
    ]
    assert listed.read_bytes() == "\ufeff09350000000 - لغو تلفنی\r\n".encode()
    assert stat.S_IMODE(listed.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".optout")] == []


def test_replies_are_applied_in_received_order_whatever_the_answer_said(
    journal: Journal, tmp_path: Path
) -> None:
    """11 at 10:00 and 12 at 10:05 end off the list, even when one answer lists the 12 first."""
    listed = tmp_path / "optout.txt"
    journal.save_replies([
        reply("2", "09121234567", "12", "2026-12-02T10:05:00"),
        reply("1", "09121234567", "11", "2026-12-02T10:00:00"),
    ])  # fmt: skip
    applied = apply_saved(journal, LIVE, listed, clock)
    assert [a.action for a in applied] == [OPTED_OUT, OPTED_IN]
    assert load_suppression(listed, "optout.txt").numbers == set()


def test_null_list_unreadable_number_and_questions(journal: Journal) -> None:
    """With no list an opt-out is `no_list` (the command warns); a sender that is no mobile
    number is `bad_number`; a sentence mentioning لغو is `check_optout`."""
    journal.save_replies([
        reply("1", "09121234567", "11"),
        Reply(LIVE, "2", "Irancell", "", "لغو", "", NOW.isoformat()),
        reply("3", "09121234568", "لطفا لغو کنید"),
    ])  # fmt: skip
    applied = apply_saved(journal, LIVE, None, clock)
    assert [a.action for a in applied] == [NO_LIST, BAD_NUMBER, CHECK_OPTOUT]
    assert applied[2].note == "mentions an opt-out word; read it"


def test_honour_reads_until_an_answer_is_empty_and_keeps_each_answer_first(
    journal: Journal, tmp_path: Path
) -> None:
    """RecieveNewMessages(100) until an answer brings none; the CSV lists every reply (BOM,
    0600, a text starting with = quoted)."""
    receive = answers(
        [SMS("1", "09121234567", "۱۱"), SMS("2", "09121234568", "=HYPERLINK(1)")],
        [SMS("3", "9121234569", "12")],
    )
    result = honour_replies(
        journal, receive, scope=LIVE, list_path=tmp_path / "optout.txt",
        folder=tmp_path / "reports", clock=clock,
    )  # fmt: skip
    assert receive.asked == [100, 100, 100]
    assert (result.new, result.counts, result.stopped) == (3, (1, 1, 1), None)
    assert result.csv_path == tmp_path / "reports" / "replies-20261202-101500.csv"
    assert stat.S_IMODE(result.csv_path.stat().st_mode) == 0o600
    raw = result.csv_path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    assert [(r["number"], r["action"], r["text"]) for r in rows] == [
        ("09121234567", OPTED_OUT, "۱۱"),
        ("09121234568", OTHER, "'=HYPERLINK(1)"),
        ("09121234569", NOT_LISTED, "12"),
    ]
    assert list(rows[0]) == ["received_at", "mobile", "number", "text", "action", "note",
                             "message_id"]  # fmt: skip
    assert [p.name for p in (tmp_path / "reports").iterdir()] == [result.csv_path.name]


def test_a_read_stops_at_an_answer_of_replies_already_kept(
    journal: Journal, tmp_path: Path
) -> None:
    """The sandbox hands its sample reply out to each new simulator: seen before, it ends the
    read (0 new) and writes no CSV."""
    journal.save_replies([reply("sandbox-reply-1", "09121234567", "لغو۱۱")])
    journal.mark_replies(LIVE, [("sandbox-reply-1", OPTED_OUT, "")])
    receive = answers([SMS("sandbox-reply-1", "09121234567", "لغو۱۱")], [SMS("x", "0912", "?")])
    result = honour_replies(
        journal, receive, scope=LIVE, list_path=None, folder=tmp_path, clock=clock
    )
    assert (result.new, result.applied, result.csv_path) == (0, [], None)
    assert receive.asked == [100]


def test_a_provider_error_mid_read_keeps_and_applies_what_came_before(
    journal: Journal, tmp_path: Path
) -> None:
    listed = tmp_path / "optout.txt"
    receive = answers([SMS("1", "09121234567", "11")], ProviderFatal("Token_Expired", "expired"))
    result = honour_replies(
        journal, receive, scope=LIVE, list_path=listed, folder=tmp_path, clock=clock
    )
    assert result.stopped is not None and result.stopped.title == "Token_Expired"
    assert (result.new, [a.action for a in result.applied]) == (1, [OPTED_OUT])
    assert "09121234567" in load_suppression(listed, "optout.txt")


def test_replies_kept_but_not_applied_are_applied_by_the_next_command(
    tmp_path: Path,
) -> None:
    """A crash between the commit of an answer and its application loses nothing: the next
    command applies it first, before reading more."""
    path, listed = tmp_path / "journal.sqlite", tmp_path / "optout.txt"
    with Journal.open(path, "spring") as journal:
        journal.save_replies([reply("1", "09121234567", "11")])  # ... and the process died
    with Journal.open(path, "other-campaign") as journal:
        result = honour_replies(
            journal, answers(), scope=LIVE, list_path=listed, folder=tmp_path, clock=clock
        )
    assert (result.new, result.earlier, [a.action for a in result.applied]) == (0, 1, [OPTED_OUT])
    assert listed.read_text(encoding="utf-8").count("09121234567") == 1


def test_sandbox_replies_never_touch_the_list_and_the_last_one_counts(
    journal: Journal, tmp_path: Path
) -> None:
    """Sandbox replies are kept under their own scope; the numbers whose last sandbox opt-out or
    opt-in reply opted out are the sandbox run's to skip, with the reply as the reason."""
    listed = tmp_path / "optout.txt"

    def sandbox(message_id: str, number: str, text: str, at: str) -> Reply:
        return Reply(SANDBOX, message_id, number, number, text, at, NOW.isoformat())

    journal.save_replies([
        sandbox("1", "09121234567", "لغو۱۱", "2026-12-02T10:15:00"),
        sandbox("2", "09121234568", "11", "2026-12-02T10:15:00"),
        sandbox("3", "09121234568", "12", "2026-12-02T10:16:00"),
        sandbox("4", "09121234567", "سلام", "2026-12-02T10:17:00"),
    ])  # fmt: skip
    applied = apply_saved(journal, SANDBOX, listed, clock)
    assert [a.action for a in applied] == [OPTED_OUT, OPTED_OUT, OPTED_IN, OTHER]
    assert not listed.exists()
    assert reply_optouts(journal, SANDBOX) == {
        "09121234567": "replied «لغو۱۱» on 2026-12-02 10:15 Tehran (sandbox)"
    }


EDITOR = """
import sys, time
from pathlib import Path
from pipeline.suppression import edit_list
with edit_list(Path(sys.argv[1])) as edit:
    edit.append(sys.argv[2], "from another process")
    print("locked", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def test_list_changes_are_serialised_by_a_lock_beside_the_list(tmp_path: Path) -> None:
    """Another process's change holds `<list>.lock`; ours waits for it, then sees its line,
    so neither change is lost (an append and an atomic rewrite never interleave)."""
    listed = tmp_path / "optout.txt"
    listed.write_text("09121234567  # replied «11» on 2026-12-01 10:00 Tehran\n", "utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    other = subprocess.Popen(
        [sys.executable, "-c", EDITOR, str(listed), "09350000000", "0.5"],
        stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert other.stdout is not None and other.stdout.readline() == "locked\n"
    with edit_list(listed) as edit:  # waits for the other process's lock
        assert edit.listed("09350000000")
        assert edit.remove_replied("09121234567") == (1, False)
    other.communicate(timeout=10)
    assert other.returncode == 0
    assert listed.read_text("utf-8") == "09350000000  # from another process\n"
    assert list_lock(listed).exists()
    assert stat.S_IMODE(list_lock(listed).stat().st_mode) == 0o600


APPLIER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from pipeline.inbox import LIVE, apply_saved
from pipeline.journal import Journal
with Journal.open(Path(sys.argv[1]), sys.argv[3], busy_timeout=30) as journal:
    print("ready", flush=True)
    sys.stdin.readline()  # both start applying at the same moment
    applied = apply_saved(journal, LIVE, Path(sys.argv[2]), lambda: datetime.now(UTC))
    print(",".join(a.reply.message_id for a in applied), flush=True)
"""


def test_two_campaigns_applying_at_once_apply_each_reply_once(tmp_path: Path) -> None:
    """Replies are account-wide: two campaigns' processes applying the same kept replies at the
    same moment (the list's flock, then the claim) put each number on the list once and each
    reply in exactly one process's result."""
    path, listed = tmp_path / "journal.sqlite", tmp_path / "optout.txt"
    with Journal.open(path, "spring") as journal:
        journal.save_replies([reply(str(i), f"0912{i:07d}", "11") for i in range(200)])
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPLIER, str(path), str(listed), name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("spring", "autumn")
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    for proc in procs:  # both go, then both are waited for
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate(timeout=60)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0]
    claimed = [set(filter(None, out.strip().split(","))) for out in outputs]
    assert not claimed[0] & claimed[1]
    assert claimed[0] | claimed[1] == {str(i) for i in range(200)}
    numbers = [line.split()[0] for line in listed.read_text("utf-8").splitlines()[2:]]
    assert sorted(numbers) == sorted(f"0912{i:07d}" for i in range(200))
