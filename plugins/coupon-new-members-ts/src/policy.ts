// Example `coupon` policy: only users who joined within the last `days` days
// (config, default 7) may be issued the coupon. Applying it follows the
// coupon's own terms, as the standard policy does.
// The TypeScript port of plugins/coupon-new-members; it passes that plugin's cases.
import type { ApplyInput, IssueInput } from 'commerce:policy/coupon@1.0.0';
import type { Config, Money } from 'commerce:policy/types@1.0.0';
import { log } from 'commerce:policy/host@1.0.0';

const DEFAULT_DAYS = 7n;
const SECONDS_PER_DAY = 86_400n;

/** `days` from the config. A bad value must not lock everyone out: the default, and a log line. */
function windowDays(config: Config): bigint {
  const entry = config.find(([key]) => key === 'days');
  if (entry === undefined) return DEFAULT_DAYS;
  const text = entry[1].trim();
  // A whole number of days that fits a u32, as the Rust policy reads it.
  if (/^\+?\d{1,10}$/.test(text) && BigInt(text) <= 4_294_967_295n) return BigInt(text);
  log('warn', `config days = "${entry[1]}" is not a whole number of days; using ${DEFAULT_DAYS}`);
  return DEFAULT_DAYS;
}

export const coupon = {
  /** The coupon's own terms: its validity, its minimum, fixed or percent capped. */
  apply(input: ApplyInput): Money {
    const terms = input.coupon;
    // An `err` answer is a thrown string.
    if (input.now < terms.validFrom || input.now >= terms.validUntil) throw 'NOT_VALID_NOW';
    if (input.subtotal < terms.minOrderAmount) throw 'BELOW_MIN_ORDER_AMOUNT';
    const subtotal = input.subtotal > 0n ? input.subtotal : 0n;
    let amount = terms.value;
    if (terms.kind === 'percent') {
      amount = (subtotal * terms.value) / 100n;
      if (amount < 0n) amount = 0n;
      if (terms.maxAmount !== undefined && amount > terms.maxAmount) amount = terms.maxAmount;
    }
    return amount < 0n ? 0n : amount > subtotal ? subtotal : amount;
  },

  /** A user who joined exactly `days` days ago still counts as new. */
  canIssue(input: IssueInput): void {
    const window = windowDays(input.config) * SECONDS_PER_DAY;
    if (input.now - input.user.createdAt > window) throw 'NEW_MEMBERS_ONLY';
  },
};
