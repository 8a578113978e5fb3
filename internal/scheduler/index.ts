// The scheduler package: createScheduler for daemons (`skiff scheduler`, `skiff up`), and the
// pure core for tests, tools and benchmarks.
export { createScheduler, DEFAULT_SCHEDULER_NAME } from "./scheduler.ts";
export type { Scheduler, SchedulerOptions, SchedulerStats } from "./scheduler.ts";
export * from "./core/index.ts";
