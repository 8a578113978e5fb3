// The pure scheduling core: no I/O, no clocks; (pod, snapshot) → node or reasons.
export { createNodeRotation, feasibleNodesToFind, filterNodes, formatFitError, isScheduled, schedule } from "./schedule.ts";
export type { FilterResult, NodeRotation, ScheduleOptions, ScheduleResult, Scheduled, Unschedulable } from "./schedule.ts";
export { buildSnapshot, normalizeReverse, normalizeToMax, MAX_SCORE } from "./framework.ts";
export type { FilterPlugin, NodeFilter, NodeScorer, ScorePlugin, Snapshot } from "./framework.ts";
export { addPodToNode, newNodeInfo, removePodFromNode, setNode, topologyValue } from "./node-info.ts";
export type { NodeInfo, TaintLike } from "./node-info.ts";
export { isTerminal, podInfoOf, podKey } from "./pod-info.ts";
export type { AffinityTerm, HostPort, PodInfo } from "./pod-info.ts";
export { defaultFilters, defaultScorers } from "./plugins/index.ts";
