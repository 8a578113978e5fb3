// Every controller the controller-manager can run, by the name `--controllers` uses.
// One line per controller.
import type { ControllerFactory } from "./controller.ts";
import { replicaSetController } from "./replicaset/replicaset.ts";
import { createDeploymentController } from "./deployment/index.ts";
import { createNodeLifecycleController } from "./node/lifecycle.ts";
import { createEndpointsController } from "./endpoints/endpoints.ts";
import { createGarbageCollector } from "./gc/gc.ts";
import { createPodGcController } from "./podgc/podgc.ts";
import { createEventTtlController } from "./eventttl/eventttl.ts";
import { createServiceAccountController } from "./serviceaccount/serviceaccount.ts";
import { createTokenCleaner } from "./tokencleaner/tokencleaner.ts";
import { createVolumeController } from "./volume/controller.ts";

export const controllers: Record<string, ControllerFactory> = {
  replicaset: replicaSetController,
  deployment: createDeploymentController,
  nodelifecycle: createNodeLifecycleController,
  endpoints: createEndpointsController,
  gc: createGarbageCollector,
  podgc: createPodGcController,
  eventttl: createEventTtlController,
  serviceaccount: createServiceAccountController,
  tokencleaner: createTokenCleaner,
  persistentvolume: createVolumeController,
};
