/// <reference path="./commerce-policy-types.d.ts" />
declare module 'commerce:policy/coupon@1.0.0' {
  /**
   * The discount in won (`0 <= amount <= subtotal`), or a reason code such
   * as `BELOW_MIN_ORDER_AMOUNT` or `NOT_VALID_NOW`.
   */
  export function apply(input: ApplyInput): Money;
  /**
   * Whether this user may be issued the coupon, or a reason code such as
   * `NEW_MEMBERS_ONLY`.
   */
  export function canIssue(input: IssueInput): void;
  export type PricedLine = import('commerce:policy/types@1.0.0').PricedLine;
  export type UserFacts = import('commerce:policy/types@1.0.0').UserFacts;
  export type CouponTerms = import('commerce:policy/types@1.0.0').CouponTerms;
  export type Timestamp = import('commerce:policy/types@1.0.0').Timestamp;
  export type Money = import('commerce:policy/types@1.0.0').Money;
  export type Config = import('commerce:policy/types@1.0.0').Config;
  export interface ApplyInput {
    lines: Array<PricedLine>,
    /**
     * Sum of the lines' totals.
     */
    subtotal: Money,
    user: UserFacts,
    coupon: CouponTerms,
    now: Timestamp,
    config: Config,
  }
  export interface IssueInput {
    user: UserFacts,
    coupon: CouponTerms,
    now: Timestamp,
    config: Config,
  }
}
