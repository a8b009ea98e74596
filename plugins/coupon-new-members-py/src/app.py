"""Example `coupon` policy: only users who joined within the last `days` days
(config, default 7) may be issued the coupon. Applying it follows the
coupon's own terms, as the standard policy does.

The Python port of plugins/coupon-new-members; it passes that plugin's cases.
"""

import re
from typing import List, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.coupon import ApplyInput, IssueInput
from wit_world.imports import host
from wit_world.imports.types import DiscountKind, LogLevel

DEFAULT_DAYS = 7
SECONDS_PER_DAY = 86_400
# A whole number of days that fits a u32, as the Rust policy reads it.
WHOLE_DAYS = re.compile(r"\+?[0-9]{1,10}")


def window_days(config: List[Tuple[str, str]]) -> int:
    """`days` from the config. A bad value must not lock everyone out: the default, and a log line."""
    for key, value in config:
        if key != "days":
            continue
        text = value.strip()
        if WHOLE_DAYS.fullmatch(text) and int(text) <= 0xFFFF_FFFF:
            return int(text)
        host.log(
            LogLevel.WARN,
            f'config days = "{value}" is not a whole number of days; using {DEFAULT_DAYS}',
        )
        return DEFAULT_DAYS
    return DEFAULT_DAYS


def toward_zero(numerator: int, denominator: int) -> int:
    """Division rounding toward zero, as the contract says (Python's `//` floors)."""
    quotient = abs(numerator) // abs(denominator)
    return quotient if (numerator < 0) == (denominator < 0) else -quotient


class Coupon(exports.Coupon):
    def apply(self, input: ApplyInput) -> int:
        """The coupon's own terms: its validity, its minimum, fixed or percent capped."""
        terms = input.coupon
        # An `err` answer is raised.
        if input.now < terms.valid_from or input.now >= terms.valid_until:
            raise Err("NOT_VALID_NOW")
        if input.subtotal < terms.min_order_amount:
            raise Err("BELOW_MIN_ORDER_AMOUNT")
        subtotal = max(input.subtotal, 0)
        amount = terms.value
        if terms.kind == DiscountKind.PERCENT:
            amount = min(max(toward_zero(subtotal * terms.value, 100), 0), subtotal)
            if terms.max_amount is not None:
                amount = min(amount, terms.max_amount)
        return min(max(amount, 0), subtotal)

    def can_issue(self, input: IssueInput) -> None:
        """A user who joined exactly `days` days ago still counts as new."""
        window = window_days(input.config) * SECONDS_PER_DAY
        if input.now - input.user.created_at > window:
            raise Err("NEW_MEMBERS_ONLY")
