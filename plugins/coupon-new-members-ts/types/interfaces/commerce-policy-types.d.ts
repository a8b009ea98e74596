declare module 'commerce:policy/types@1.0.0' {
  /**
   * An amount of won.
   */
  export type Money = bigint;
  /**
   * Seconds since 1970-01-01T00:00:00Z.
   */
  export type Timestamp = bigint;
  /**
   * The slot's configuration from the environment's manifest, as given there.
   */
  export type Config = Array<[string, string]>;
  /**
   * One line of a cart, as the catalogue lists it.
   */
  export interface Line {
    productId: bigint,
    name: string,
    category: string,
    /**
     * List price of one unit.
     */
    unitPrice: Money,
    quantity: number,
  }
  /**
   * A line after pricing: what the customer pays for it.
   */
  export interface PricedLine {
    productId: bigint,
    name: string,
    category: string,
    /**
     * Unit price the pricing policy settled on.
     */
    unitPrice: Money,
    quantity: number,
    /**
     * Taken off `unit-price * quantity` by the pricing policy.
     */
    discount: Money,
    /**
     * `unit-price * quantity - discount`.
     */
    lineTotal: Money,
  }
  /**
   * What a policy may know about the customer.
   */
  export interface UserFacts {
    id: bigint,
    createdAt: Timestamp,
    /**
     * Orders this user has paid and not cancelled.
     */
    paidOrders: number,
  }
  /**
   * # Variants
   * 
   * ## `"fixed"`
   * 
   * `value` won off.
   * ## `"percent"`
   * 
   * `value` percent off, at most `max-amount` won when it is set.
   */
  export type DiscountKind = 'fixed' | 'percent';
  /**
   * A coupon's terms, as the operator created it.
   */
  export interface CouponTerms {
    couponId: bigint,
    name: string,
    kind: DiscountKind,
    value: bigint,
    maxAmount?: Money,
    minOrderAmount: Money,
    validFrom: Timestamp,
    validUntil: Timestamp,
  }
  /**
   * One reason an order is not allowed.
   */
  export interface Violation {
    /**
     * Stable machine-readable code, SCREAMING_SNAKE_CASE.
     */
    code: string,
    message: string,
  }
  /**
   * # Variants
   * 
   * ## `"trace"`
   * 
   * ## `"debug"`
   * 
   * ## `"info"`
   * 
   * ## `"warn"`
   * 
   * ## `"error"`
   */
  export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error';
}
