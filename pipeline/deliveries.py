"""Delivery reports (--deliveries): DeliveryType codes to classes, and the lookup loop.

Names follow amoot-api.md §4 (from client code: the provider documents only 1, 2 and 35); a
class not final, or a lookup whose `Status` is not `Success`, is asked again."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from pipeline.clock import Clock
from pipeline.errors import ProviderFatal
from pipeline.journal import Journal
from pipeline.suppression import Suppression

BATCH_SIZE = 100  # message IDs per GetDeliveries; the provider documents no maximum (§5.2)


class Delivery(StrEnum):
    """What became of a sent message, as the delivery report tells it."""

    DELIVERED = "delivered"
    NOT_DELIVERED = "not_delivered"
    PENDING = "pending"
    BLACKLISTED = "blacklisted"
    FILTERED = "filtered"
    WRONG_NUMBER = "wrong_number"
    UNKNOWN = "unknown"


class DeliveryType(NamedTuple):
    """One DeliveryType code: its name in client code, its class, and whether it can change."""

    name: str
    delivery: Delivery
    final: bool


DELIVERY_TYPES: dict[int, DeliveryType] = {
    0: DeliveryType("SendToTci", Delivery.PENDING, False),
    1: DeliveryType("RecievedPhone", Delivery.DELIVERED, True),
    2: DeliveryType("NotRecievedPhone", Delivery.NOT_DELIVERED, True),
    3: DeliveryType("TciError", Delivery.NOT_DELIVERED, True),
    5: DeliveryType("UnknownError", Delivery.NOT_DELIVERED, True),
    # Reached the operator; a handset report may still follow, so it is asked about again.
    8: DeliveryType("TciReceived", Delivery.PENDING, False),
    16: DeliveryType("NotTciReceived", Delivery.NOT_DELIVERED, True),
    35: DeliveryType("BlackList", Delivery.BLACKLISTED, True),
    100: DeliveryType("Unknown", Delivery.UNKNOWN, False),
    200: DeliveryType("Sent", Delivery.PENDING, False),
    300: DeliveryType("Filtered", Delivery.FILTERED, True),
    400: DeliveryType("SendingList", Delivery.PENDING, False),
    500: DeliveryType("NoReceipt", Delivery.NOT_DELIVERED, True),  # "not accepted"
    501: DeliveryType("SendWithAvanak", Delivery.DELIVERED, True),  # as a voice call
    502: DeliveryType("SendWithBackupVtel", Delivery.DELIVERED, True),  # by the backup line
    900: DeliveryType("SendingQueue", Delivery.PENDING, False),
    950: DeliveryType("WrongNumber", Delivery.WRONG_NUMBER, True),
    951: DeliveryType("EmptyMessage", Delivery.NOT_DELIVERED, True),
    952: DeliveryType("ShortCodeInvalid", Delivery.WRONG_NUMBER, True),
}
SUPPRESS_CODES = frozenset({35, 950, 952})
FINAL_DELIVERIES = frozenset(t.delivery for t in DELIVERY_TYPES.values() if t.final)


def delivery_type(code: int) -> DeliveryType:
    """The meaning of a DeliveryType; a code the table does not know is unknown, asked again."""
    return DELIVERY_TYPES.get(code) or DeliveryType(f"code {code}", Delivery.UNKNOWN, False)


@dataclass(slots=True)
class DeliveryReport:
    """What one delivery check learnt, and where every sent row of the campaign now stands."""

    checked: int  # rows whose delivery the provider reported in this call
    counts: Counter[str]  # delivery class -> sent rows of this campaign now in it
    suppressed_added: int  # numbers this call added to the suppression list
    stopped: ProviderFatal | None  # why the check stopped early (what it learnt is kept)
    still_open: int  # sent rows with a message ID whose delivery is not final yet

    @property
    def rate(self) -> float | None:
        """Delivered / sent rows with a final delivery; None while none is final."""
        final = sum(self.counts[d] for d in FINAL_DELIVERIES)
        return self.counts[Delivery.DELIVERED] / final if final else None


def check_deliveries(
    journal: Journal,
    lookup: Callable[[Sequence[str]], dict[str, int]],
    *,
    batch_size: int = BATCH_SIZE,
    suppression: Suppression | None,
    clock: Clock,
    stop: threading.Event | None = None,
) -> DeliveryReport:
    """Ask `lookup` about every sent row not final, a batch committed at a time; blacklisted and
    wrong numbers join `suppression` first, so a failed write leaves the row to ask again."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    waiting = journal.awaiting_delivery()
    numbers_of: dict[str, list[str]] = {}
    for entry in waiting:
        # GetDeliveries refuses the whole list for one ID that is not a positive integer.
        if entry.message_id.isascii() and entry.message_id.isdigit() and int(entry.message_id):
            numbers_of.setdefault(entry.message_id, []).append(entry.number)
    ids = list(numbers_of)

    checked = added = closed = 0
    stopped: ProviderFatal | None = None
    for start in range(0, len(ids), batch_size):
        if stop is not None and stop.is_set():
            break
        try:
            found = lookup(ids[start : start + batch_size])
        except ProviderFatal as exc:  # when interrupted, the interrupt is the reason
            stopped = None if stop is not None and stop.is_set() else exc
            break
        results: list[tuple[str, str, str, bool]] = []
        blocked: list[tuple[str, str]] = []
        for message_id in ids[start : start + batch_size]:
            if (code := found.get(message_id)) is None:
                continue
            meaning = delivery_type(code)
            for number in numbers_of[message_id]:
                results.append((number, meaning.delivery.value, str(code), meaning.final))
                if code in SUPPRESS_CODES:
                    blocked.append((number, f"delivery report {meaning.name} ({code})"))
        if blocked and suppression is not None:
            added += suppression.add(blocked, moment=clock())
        journal.record_deliveries(results)
        checked += len(results)
        closed += sum(final for *_, final in results)

    counts = Counter({d: n for d, n in journal.delivery_counts().items() if d})
    return DeliveryReport(checked, counts, added, stopped, len(waiting) - closed)
