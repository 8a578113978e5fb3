#!/usr/bin/env node
// The Skiff daemons in one binary, each runnable alone (like k3s): `skiff apiserver`, and the
// components later issues add.
import { defineCommand, runMain } from "citty";
import { agentCommand } from "../internal/cmd/agent.ts";
import { apiserverCommand } from "../internal/cmd/apiserver.ts";
import { etcdSnapshotCommand } from "../internal/cmd/etcd-snapshot.ts";
import { controllerManagerCommand } from "../internal/cmd/controller-manager.ts";
import { schedulerCommand } from "../internal/cmd/scheduler.ts";
import { secretsEncryptCommand } from "../internal/cmd/secrets-encrypt.ts";
import { tokenCommand } from "../internal/cmd/token.ts";
import { upCommand } from "../internal/cmd/up.ts";
import { quietKnownWarnings } from "../internal/cmd/node-warnings.ts";

const main = defineCommand({
  meta: { name: "skiff", description: "Skiff daemons: a Kubernetes-style orchestrator, gRPC-first" },
  subCommands: { apiserver: apiserverCommand, agent: agentCommand, "controller-manager": controllerManagerCommand, "etcd-snapshot": etcdSnapshotCommand, scheduler: schedulerCommand, "secrets-encrypt": secretsEncryptCommand, token: tokenCommand, up: upCommand },
});

quietKnownWarnings();
void runMain(main);
