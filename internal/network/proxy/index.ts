// The node agent's service proxy: Services + Endpoints → one nftables table (see README.md).
export { createServiceProxy, DEFAULT_TABLE, hostAddresses } from "./proxy.ts";
export type { ProxyStats, ServiceProxy, ServiceProxyOptions } from "./proxy.ts";
export { buildModel, udpFlushes } from "./model.ts";
export type { Backend, ProxyModel, ServicePortRules } from "./model.ts";
export { buildRuleset, MASQUERADE_MARK, normalizeServiceCidr } from "./ruleset.ts";
export type { Ruleset, RulesetOptions } from "./ruleset.ts";
export { deleteTable, listTable, listTables } from "./kernel.ts";
