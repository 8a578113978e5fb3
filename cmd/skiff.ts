#!/usr/bin/env node
// The Skiff daemons in one binary, each runnable alone (like k3s): `skiff apiserver`, `skiff
// agent`, `skiff server`, … First the process re-executes itself with Skiff's Node memory flags
// (internal/cmd/node-memory.ts), before the commands are loaded, so that every way of starting
// it (systemd units, `node cmd/skiff.ts`, the bin link) runs with them.
import { relaunchWithMemoryFlags } from "../internal/cmd/node-memory.ts";

relaunchWithMemoryFlags();
await import("../internal/cmd/main.ts");
