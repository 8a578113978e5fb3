// The slot for bearer-token authenticators: the static token file, ServiceAccount JWTs, bootstrap
// tokens. Each answers "whose token is this?" or undefined when it does not know the token.
import type { UserInfo } from "../types.ts";

export interface TokenAuthenticator {
  authenticate(token: string): Promise<UserInfo | undefined> | UserInfo | undefined;
}
