// Example `order_rules` policy: at most 5 units of any product per order,
// counted across all of the order's lines.
// The TypeScript port of plugins/order-rules-max-five; it passes that plugin's cases.
import type { OrderInput } from 'commerce:policy/order-rules@1.0.0';
import type { Violation } from 'commerce:policy/types@1.0.0';

const MAX_UNITS = 5;

export const orderRules = {
  check(input: OrderInput): Violation[] {
    // Summed per product, so splitting 6 units over two lines does not get around it.
    const units = new Map<bigint, number>();
    for (const line of input.lines) {
      units.set(line.productId, (units.get(line.productId) ?? 0) + line.quantity);
    }
    // In product order, as the Rust policy's BTreeMap gives them.
    return [...units.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .filter(([, count]) => count > MAX_UNITS)
      .map(([product, count]) => ({
        code: 'MAX_QUANTITY_PER_PRODUCT',
        message: `product ${product}: ${count} units, at most ${MAX_UNITS} per order`,
      }));
  },
};
