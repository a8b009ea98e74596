"""Example `order_rules` policy: at most 5 units of any product per order,
counted across all of the order's lines.

The Python port of plugins/order-rules-max-five; it passes that plugin's cases.
"""

from typing import Dict, List

from wit_world import exports
from wit_world.exports.order_rules import OrderInput
from wit_world.imports.types import Violation

MAX_UNITS = 5


class OrderRules(exports.OrderRules):
    def check(self, input: OrderInput) -> List[Violation]:
        # Summed per product, so splitting 6 units over two lines does not get around it.
        units: Dict[int, int] = {}
        for line in input.lines:
            units[line.product_id] = units.get(line.product_id, 0) + line.quantity
        # In product order, as the Rust policy's BTreeMap gives them.
        return [
            Violation(
                "MAX_QUANTITY_PER_PRODUCT",
                f"product {product}: {count} units, at most {MAX_UNITS} per order",
            )
            for product, count in sorted(units.items())
            if count > MAX_UNITS
        ]
