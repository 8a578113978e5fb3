// The structural rules written in the .proto files (`[(buf.validate.field) …]`), checked with
// protovalidate and reported with Kubernetes-style field paths: JSON (lowerCamelCase) names, list
// indexes and quoted map keys — `spec.containers[0].image`, `metadata.labels["app"]`.
// Semantic checks (name formats, quantities, cross-field rules) live in validation.ts.
import type { DescMessage, Message } from "@bufbuild/protobuf";
import type { Path } from "@bufbuild/protobuf/reflect";
import { createValidator } from "@bufbuild/protovalidate";

export interface RuleViolation {
  /** Kubernetes-style JSON path of the offending field; "" for the object itself. */
  field: string;
  /** protovalidate's explanation, e.g. `value must be in list ["", "Always", "OnFailure", "Never"]`. */
  description: string;
  /** The same text under the name validation.ts's Violation uses, so both lists can be merged. */
  message: string;
}

// Compiling rules is per message type and cached inside the validator: build it once.
const validator = createValidator();

/** Every rule violation of `message`; throws if a rule cannot be evaluated (a bug in the .proto). */
export function ruleViolations(schema: DescMessage, message: Message): RuleViolation[] {
  const result = validator.validate(schema, message);
  switch (result.kind) {
    case "valid":
      return [];
    case "invalid":
      return result.violations.map((v) => {
        const description = v.forKey ? `invalid key: ${v.message}` : v.message;
        return { field: jsonPath(v.field), description, message: description };
      });
    case "error":
      throw new Error(`protovalidate rules of ${schema.typeName} failed to evaluate: ${result.error.message}`, {
        cause: result.error,
      });
  }
}

/**
 * A protovalidate field path as a Kubernetes-style JSON path. Like pathToString from
 * @bufbuild/protobuf/reflect, but with JSON names: fields and oneofs joined by ".", `[i]` for
 * list elements, `["key"]` for string map keys, `[k]` for other keys, `[ext.name]` for extensions.
 */
export function jsonPath(path: Path): string {
  let out = "";
  for (const el of path) {
    switch (el.kind) {
      case "field":
        out += (out === "" ? "" : ".") + el.jsonName;
        break;
      case "oneof":
        // oneofs have no JSON name; ours would be lowerCamelCase like the fields
        out += (out === "" ? "" : ".") + el.name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
        break;
      case "extension":
        out += `[${el.typeName}]`;
        break;
      case "list_sub":
        out += `[${el.index}]`;
        break;
      case "map_sub":
        out += typeof el.key === "string" ? `[${JSON.stringify(el.key)}]` : `[${String(el.key)}]`;
        break;
    }
  }
  return out;
}
