// skiffctl create token NAME [-n NS] [--duration 1h] [--audience A]… — asks the apiserver for a
// ServiceAccount token (ServiceAccountService.CreateToken, Kubernetes' TokenRequest) and prints
// it, e.g. for a CI job outside the cluster: `curl -H "Authorization: Bearer $(skiffctl create token ci-bot)"`.
import { createClient } from "@connectrpc/connect";
import { defineCommand } from "citty";
import { ServiceAccountService } from "../../../gen/skiff/v1alpha1/service_account_service_pb.js";
import { connect, namespaceArgs, namespaceOf, serverArg, type Session } from "../context.ts";
import { CliError } from "../errors.ts";
import { flagValues, parseDuration, strictFlags } from "./flags.ts";
import { objectGenerators } from "./create-objects.ts";

const USAGE = "skiffctl create token NAME [-n NS] [--duration 1h] [--audience AUD]";

export function createCommand(session: Session) {
  const token = defineCommand({
    meta: { name: "token", description: "Print a token of a ServiceAccount: create token NAME [--duration 1h] [--audience AUD]" },
    setup: strictFlags,
    args: {
      name: { type: "positional", description: "the ServiceAccount", required: false },
      duration: { type: "string", description: "how long the token is valid, 10m to 48h (default 1h)", valueHint: "DURATION" },
      audience: { type: "string", description: "who the token is for (repeatable; default: the apiserver)", valueHint: "AUD" },
      ...namespaceArgs,
      ...serverArg,
    },
    async run({ args, rawArgs }) {
      const names = args._.map(String);
      if (names.length !== 1) throw new CliError(`give exactly one ServiceAccount name: ${USAGE}`);
      const ms = parseDuration("duration", args.duration);
      if (ms % 1000 !== 0) throw new CliError(`--duration must be whole seconds, got "${args.duration}"`);
      const api = await connect(session, args);
      const res = await createClient(ServiceAccountService, api.transport).createToken(
        {
          namespace: namespaceOf(args),
          name: names[0],
          audiences: flagValues(rawArgs, "audience"),
          // 0 lets the apiserver choose its default (1h).
          expirationSeconds: BigInt(ms / 1000),
        },
        { timeoutMs: 30_000 },
      );
      session.io.out(`${res.token}\n`);
    },
  });
  return defineCommand({
    meta: { name: "create", description: "Create objects from flags (namespace, serviceaccount, configmap, secret generic, deployment) or a token: create KIND NAME …" },
    subCommands: { token, ...objectGenerators(session) },
  });
}
