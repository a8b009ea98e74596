/// <reference path="./commerce-policy-types.d.ts" />
declare module 'commerce:policy/order-rules@1.0.0' {
  /**
   * Every violation found; an empty list accepts the order.
   */
  export function check(input: OrderInput): Array<Violation>;
  export type PricedLine = import('commerce:policy/types@1.0.0').PricedLine;
  export type UserFacts = import('commerce:policy/types@1.0.0').UserFacts;
  export type CouponTerms = import('commerce:policy/types@1.0.0').CouponTerms;
  export type Violation = import('commerce:policy/types@1.0.0').Violation;
  export type Timestamp = import('commerce:policy/types@1.0.0').Timestamp;
  export type Money = import('commerce:policy/types@1.0.0').Money;
  export type Config = import('commerce:policy/types@1.0.0').Config;
  export interface OrderInput {
    lines: Array<PricedLine>,
    subtotal: Money,
    /**
     * What the coupon takes off, 0 without one.
     */
    couponDiscount: Money,
    total: Money,
    user: UserFacts,
    coupon?: CouponTerms,
    now: Timestamp,
    config: Config,
  }
}
