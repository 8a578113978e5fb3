import { create } from "@bufbuild/protobuf";
import { afterEach, describe, expect, it } from "vitest";
import { NamespaceSchema, type Namespace } from "../../../gen/skiff/v1alpha1/namespace_pb.js";
import type { Secret } from "../../../gen/skiff/v1alpha1/config_pb.js";
import { TOKEN_NAMESPACE, tokenSecret } from "../../join/token.ts";
import { gone, startTestCluster, waitFor, type TestCluster } from "../node/testing.ts";
import { createTokenCleaner } from "./tokencleaner.ts";

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

describe("token cleaner", () => {
  it("deletes expired join tokens and keeps the others", async () => {
    cluster = await startTestCluster();
    await cluster.client<Namespace>("Namespace").create(create(NamespaceSchema, { metadata: { name: TOKEN_NAMESPACE } }));
    const secrets = cluster.client<Secret>("Secret");
    const base = { secret: "0123456789abcdef", role: "agent" as const, description: "" };
    await secrets.create(tokenSecret({ ...base, id: "old000", expires: new Date(Date.now() - 1000) }));
    await secrets.create(tokenSecret({ ...base, id: "soon00", expires: new Date(Date.now() + 1500) }));
    await secrets.create(tokenSecret({ ...base, id: "never0" }));
    await cluster.start(createTokenCleaner(cluster.ctx));
    await waitFor("expired token deleted", () => gone(secrets, TOKEN_NAMESPACE, "bootstrap-token-old000"), 10_000);
    await waitFor("token deleted once it expires", () => gone(secrets, TOKEN_NAMESPACE, "bootstrap-token-soon00"), 20_000);
    expect(await gone(secrets, TOKEN_NAMESPACE, "bootstrap-token-never0")).toBe(false);
  });
});
