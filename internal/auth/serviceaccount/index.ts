export * from "./keys.ts";
export * from "./token.ts";
export * from "./authenticator.ts";
