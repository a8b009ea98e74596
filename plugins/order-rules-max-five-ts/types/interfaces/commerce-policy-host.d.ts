/// <reference path="./commerce-policy-types.d.ts" />
declare module 'commerce:policy/host@1.0.0' {
  /**
   * Recorded in the server's log with the policy's name and version.
   */
  export function log(level: LogLevel, message: string): void;
  export type LogLevel = import('commerce:policy/types@1.0.0').LogLevel;
}
