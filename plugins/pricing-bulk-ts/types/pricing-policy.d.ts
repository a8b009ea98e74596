/// <reference path="./interfaces/commerce-policy-host.d.ts" />
/// <reference path="./interfaces/commerce-policy-pricing.d.ts" />
/// <reference path="./interfaces/commerce-policy-types.d.ts" />
declare module 'commerce:policy/pricing-policy@1.0.0' {
  export type * as CommercePolicyHost100 from 'commerce:policy/host@1.0.0'; // import commerce:policy/host@1.0.0
  export type * as CommercePolicyTypes100 from 'commerce:policy/types@1.0.0'; // import commerce:policy/types@1.0.0
  export * as pricing from 'commerce:policy/pricing@1.0.0'; // export commerce:policy/pricing@1.0.0
}
