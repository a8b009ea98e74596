/// <reference path="./interfaces/commerce-policy-coupon.d.ts" />
/// <reference path="./interfaces/commerce-policy-host.d.ts" />
/// <reference path="./interfaces/commerce-policy-types.d.ts" />
declare module 'commerce:policy/coupon-policy@1.0.0' {
  export type * as CommercePolicyHost100 from 'commerce:policy/host@1.0.0'; // import commerce:policy/host@1.0.0
  export type * as CommercePolicyTypes100 from 'commerce:policy/types@1.0.0'; // import commerce:policy/types@1.0.0
  export * as coupon from 'commerce:policy/coupon@1.0.0'; // export commerce:policy/coupon@1.0.0
}
