// `skiff`: the Skiff daemons in one binary, each runnable alone (like k3s). Loaded by cmd/skiff.ts
// once the process runs with the memory flags (node-memory.ts).
import { defineCommand, runMain } from "citty";
import { agentCommand } from "./agent.ts";
import { apiserverCommand } from "./apiserver.ts";
import { etcdSnapshotCommand } from "./etcd-snapshot.ts";
import { controllerManagerCommand } from "./controller-manager.ts";
import { schedulerCommand } from "./scheduler.ts";
import { serverCommand } from "./server.ts";
import { secretsEncryptCommand } from "./secrets-encrypt.ts";
import { tokenCommand } from "./token.ts";
import { upCommand } from "./up.ts";
import { quietKnownWarnings } from "./node-warnings.ts";

const main = defineCommand({
  meta: { name: "skiff", description: "Skiff daemons: a Kubernetes-style orchestrator, gRPC-first" },
  subCommands: { apiserver: apiserverCommand, agent: agentCommand, "controller-manager": controllerManagerCommand, "etcd-snapshot": etcdSnapshotCommand, scheduler: schedulerCommand, server: serverCommand, "secrets-encrypt": secretsEncryptCommand, token: tokenCommand, up: upCommand },
});

quietKnownWarnings();
void runMain(main);
