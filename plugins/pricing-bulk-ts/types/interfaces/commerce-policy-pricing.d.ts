/// <reference path="./commerce-policy-types.d.ts" />
declare module 'commerce:policy/pricing@1.0.0' {
  /**
   * One answer per input line, in the same order.
   */
  export function price(input: PricingInput): Array<LinePrice>;
  export type Line = import('commerce:policy/types@1.0.0').Line;
  export type PricedLine = import('commerce:policy/types@1.0.0').PricedLine;
  export type UserFacts = import('commerce:policy/types@1.0.0').UserFacts;
  export type Timestamp = import('commerce:policy/types@1.0.0').Timestamp;
  export type Config = import('commerce:policy/types@1.0.0').Config;
  export interface PricingInput {
    lines: Array<Line>,
    user: UserFacts,
    now: Timestamp,
    config: Config,
  }
  export interface LinePrice {
    productId: bigint,
    /**
     * Price of one unit, `>= 0`.
     */
    unitPrice: bigint,
    /**
     * Taken off the line, `0 <= discount <= unit-price * quantity`.
     */
    discount: bigint,
    /**
     * Why, for the customer and the operator; empty when nothing was taken off.
     */
    reason: string,
  }
}
