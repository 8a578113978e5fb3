// The one error table as services outside service.ts get it (withApiErrors): a handler's failure,
// thrown or rejected, leaves as an API error; an unexpected one as INTERNAL without its text.
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { StoreError } from "../storage/store.ts";
import { STORAGE_UNAVAILABLE, withApiErrors } from "./errors.ts";

async function failureOf(p: unknown): Promise<ConnectError> {
  return Promise.resolve(p).then(
    () => {
      throw new Error("expected the handler to fail");
    },
    (e: unknown) => e as ConnectError,
  );
}

describe("withApiErrors", () => {
  it("answers a synchronous throw of a plain error as INTERNAL, hiding its text and reporting it", async () => {
    const reported: unknown[] = [];
    const secret = new Error("etcd at 10.0.0.7:2379 said: key /registry/secrets/x is corrupt");
    const handlers = withApiErrors(
      {
        whoAmI: () => {
          throw secret;
        },
      },
      (err) => reported.push(err),
    );
    const err = await failureOf((handlers.whoAmI as (r: unknown, c: unknown) => unknown)({}, {}));
    expect(err).toBeInstanceOf(ConnectError);
    expect([Code[err.code], err.rawMessage]).toEqual(["Internal", "internal error"]);
    expect(reported).toEqual([secret]);
  });

  it("maps a rejected storage error by its meaning and passes API errors through", async () => {
    const handlers = withApiErrors({
      status: async () => {
        throw new StoreError("Unavailable", "list /registry/secrets/: etcd unavailable: connect ECONNREFUSED");
      },
      reload: async () => {
        throw new ConnectError("nothing is encrypted at rest", Code.FailedPrecondition);
      },
      ok: async () => ({ answer: 42 }),
    });
    const call = (name: string) => (handlers[name] as (r: unknown, c: unknown) => Promise<unknown>)({}, {});
    const unavailable = await failureOf(call("status"));
    expect([Code[unavailable.code], unavailable.rawMessage]).toEqual(["Unavailable", STORAGE_UNAVAILABLE]);
    const refused = await failureOf(call("reload"));
    expect([Code[refused.code], refused.rawMessage]).toEqual(["FailedPrecondition", "nothing is encrypted at rest"]);
    expect(await call("ok")).toEqual({ answer: 42 });
  });
});
