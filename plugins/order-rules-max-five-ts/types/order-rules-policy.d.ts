/// <reference path="./interfaces/commerce-policy-host.d.ts" />
/// <reference path="./interfaces/commerce-policy-order-rules.d.ts" />
/// <reference path="./interfaces/commerce-policy-types.d.ts" />
declare module 'commerce:policy/order-rules-policy@1.0.0' {
  export type * as CommercePolicyHost100 from 'commerce:policy/host@1.0.0'; // import commerce:policy/host@1.0.0
  export type * as CommercePolicyTypes100 from 'commerce:policy/types@1.0.0'; // import commerce:policy/types@1.0.0
  export * as orderRules from 'commerce:policy/order-rules@1.0.0'; // export commerce:policy/order-rules@1.0.0
}
