// Example `pricing` policy: a line of 10 units or more gets 10% off.
// The TypeScript port of plugins/pricing-bulk; it passes that plugin's cases.
import type { LinePrice, PricingInput } from 'commerce:policy/pricing@1.0.0';
import type { Line } from 'commerce:policy/types@1.0.0';

/** Units of one line from which the line gets the discount. */
const BULK_QUANTITY = 10;

function priceLine(line: Line): LinePrice {
  if (line.quantity < BULK_QUANTITY) {
    return { productId: line.productId, unitPrice: line.unitPrice, discount: 0n, reason: '' };
  }
  // A tenth of the line; bigint division rounds toward zero, as the contract says.
  const tenth = (line.unitPrice * BigInt(line.quantity)) / 10n;
  return {
    productId: line.productId,
    unitPrice: line.unitPrice,
    discount: tenth > 0n ? tenth : 0n,
    reason: 'bulk 10% off',
  };
}

export const pricing = {
  price(input: PricingInput): LinePrice[] {
    return input.lines.map(priceLine);
  },
};
