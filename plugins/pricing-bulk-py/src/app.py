"""Example `pricing` policy: a line of 10 units or more gets 10% off.

The Python port of plugins/pricing-bulk; it passes that plugin's cases.
"""

from typing import List

from wit_world import exports
from wit_world.exports.pricing import LinePrice, PricingInput
from wit_world.imports.types import Line

# Units of one line from which the line gets the discount.
BULK_QUANTITY = 10


def price_line(line: Line) -> LinePrice:
    if line.quantity < BULK_QUANTITY:
        return LinePrice(line.product_id, line.unit_price, 0, "")
    # A tenth of the line, rounded down (amounts are not negative, so toward zero).
    discount = max(line.unit_price * line.quantity // 10, 0)
    return LinePrice(line.product_id, line.unit_price, discount, "bulk 10% off")


class Pricing(exports.Pricing):
    def price(self, input: PricingInput) -> List[LinePrice]:
        return [price_line(line) for line in input.lines]
