// The Deployment controller (see controller.ts), and the names skiffctl's rollout commands read.
export { CONTROLLER_NAME, createDeploymentController } from "./controller.ts";
export {
  AVAILABLE,
  DESIRED_REPLICAS_ANNOTATION,
  MAX_REPLICAS_ANNOTATION,
  NEW_RS_AVAILABLE,
  POD_TEMPLATE_HASH_LABEL,
  PROGRESSING,
  REVISION_ANNOTATION,
  REVISION_HISTORY_ANNOTATION,
  sameTemplate,
  stripHash,
  templateHash,
  TIMED_OUT,
} from "./util.ts";
