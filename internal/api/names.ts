// Name and label validators with Kubernetes' rules. Each returns a list of human-readable
// messages; an empty list means the value is valid. Callers attach the field path.

import { randomInt } from "node:crypto";

/** One validation failure, addressed by a field path such as `spec.containers[0].name`. */
export interface FieldViolation {
  field: string;
  message: string;
}

export const DNS1123_LABEL_MAX_LENGTH = 63;
export const DNS1123_SUBDOMAIN_MAX_LENGTH = 253;
export const LABEL_VALUE_MAX_LENGTH = 63;
export const QUALIFIED_NAME_MAX_LENGTH = 63;
export const ANNOTATIONS_MAX_TOTAL_BYTES = 256 * 1024;
export const PORT_NAME_MAX_LENGTH = 15;

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const C_IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ENV_VAR_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
const PORT_NAME_CHARS = /^[-a-z0-9]+$/;

function tooLong(max: number): string {
  return `must be no more than ${max} characters`;
}

/** DNS-1123 label: namespaces, container names, most short names (≤63, lowercase, '-'). */
export function validateDNS1123Label(value: string): string[] {
  if (value === "") return ["must not be empty"];
  const errs: string[] = [];
  if (value.length > DNS1123_LABEL_MAX_LENGTH) errs.push(tooLong(DNS1123_LABEL_MAX_LENGTH));
  if (!DNS1123_LABEL.test(value)) {
    errs.push(
      "must consist of lower case alphanumeric characters or '-', and must start and end with an " +
        "alphanumeric character (e.g. 'my-name' or '123-abc')",
    );
  }
  return errs;
}

/** DNS-1123 subdomain: the name of most objects (≤253, dot-separated DNS-1123 labels). */
export function validateDNS1123Subdomain(value: string): string[] {
  if (value === "") return ["must not be empty"];
  const errs: string[] = [];
  if (value.length > DNS1123_SUBDOMAIN_MAX_LENGTH) errs.push(tooLong(DNS1123_SUBDOMAIN_MAX_LENGTH));
  if (!DNS1123_SUBDOMAIN.test(value)) {
    errs.push(
      "must consist of lower case alphanumeric characters, '-' or '.', and must start and end with " +
        "an alphanumeric character (e.g. 'example.com')",
    );
  }
  return errs;
}

/**
 * DNS-1035 label: like a DNS-1123 label but must start with a letter. Kubernetes uses this for
 * Service names because they become DNS names that must not look like numbers.
 */
export function validateDNS1035Label(value: string): string[] {
  if (value === "") return ["must not be empty"];
  const errs: string[] = [];
  if (value.length > DNS1123_LABEL_MAX_LENGTH) errs.push(tooLong(DNS1123_LABEL_MAX_LENGTH));
  if (!DNS1035_LABEL.test(value)) {
    errs.push(
      "must consist of lower case alphanumeric characters or '-', start with a letter, and end " +
        "with an alphanumeric character (e.g. 'my-name' or 'abc-123')",
    );
  }
  return errs;
}

/**
 * Qualified name: an optional DNS-1123 subdomain prefix and '/', then a name of ≤63 characters of
 * alphanumerics, '-', '_' or '.' that starts and ends with an alphanumeric. Label keys and
 * annotation keys use this form.
 */
export function validateQualifiedName(value: string): string[] {
  const parts = value.split("/");
  let name: string;
  const errs: string[] = [];
  if (parts.length === 1) {
    name = parts[0];
  } else if (parts.length === 2) {
    const prefix = parts[0];
    name = parts[1];
    if (prefix === "") {
      errs.push("prefix part must not be empty");
    } else {
      for (const msg of validateDNS1123Subdomain(prefix)) errs.push(`prefix part ${msg}`);
    }
  } else {
    return [
      "must be a name with an optional DNS subdomain prefix and a single '/' " +
        "(e.g. 'MyName' or 'example.com/MyName')",
    ];
  }
  if (name === "") {
    errs.push("name part must not be empty");
  } else {
    if (name.length > QUALIFIED_NAME_MAX_LENGTH) errs.push(`name part ${tooLong(QUALIFIED_NAME_MAX_LENGTH)}`);
    if (!QUALIFIED_NAME_PART.test(name)) {
      errs.push(
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and " +
          "end with an alphanumeric character (e.g. 'MyName', 'my.name' or '123-abc')",
      );
    }
  }
  return errs;
}

/** Label key: a qualified name (`app`, `app.kubernetes.io/name`). */
export function validateLabelKey(key: string): string[] {
  return validateQualifiedName(key);
}

/** Label value: empty, or ≤63 characters of alphanumerics, '-', '_', '.' with alphanumeric ends. */
export function validateLabelValue(value: string): string[] {
  if (value === "") return [];
  const errs: string[] = [];
  if (value.length > LABEL_VALUE_MAX_LENGTH) errs.push(tooLong(LABEL_VALUE_MAX_LENGTH));
  if (!QUALIFIED_NAME_PART.test(value)) {
    errs.push(
      "must be empty or consist of alphanumeric characters, '-', '_' or '.', and must start and " +
        "end with an alphanumeric character (e.g. 'MyValue', 'my_value' or '12345')",
    );
  }
  return errs;
}

/** Every key and value of a label map; messages name the offending key. */
export function validateLabels(labels: Record<string, string>): string[] {
  const errs: string[] = [];
  for (const [k, v] of Object.entries(labels)) {
    for (const msg of validateLabelKey(k)) errs.push(`label key "${k}": ${msg}`);
    for (const msg of validateLabelValue(v)) errs.push(`label value "${v}" for key "${k}": ${msg}`);
  }
  return errs;
}

/** Total annotation size in UTF-8 bytes (keys plus values), as the apiserver limits it. */
export function annotationsSize(annotations: Record<string, string>): number {
  let total = 0;
  for (const [k, v] of Object.entries(annotations)) total += Buffer.byteLength(k) + Buffer.byteLength(v);
  return total;
}

/** The 256 KiB total size limit on an object's annotations. */
export function validateAnnotationsSize(annotations: Record<string, string>): string[] {
  const size = annotationsSize(annotations);
  if (size > ANNOTATIONS_MAX_TOTAL_BYTES) {
    return [`annotations are ${size} bytes in total; they must be at most ${ANNOTATIONS_MAX_TOTAL_BYTES} bytes`];
  }
  return [];
}

/**
 * Annotation keys (qualified names, case-insensitive like Kubernetes) and the total size limit.
 * Values are free-form.
 */
export function validateAnnotations(annotations: Record<string, string>): string[] {
  const errs: string[] = [];
  for (const k of Object.keys(annotations)) {
    for (const msg of validateQualifiedName(k.toLowerCase())) errs.push(`annotation key "${k}": ${msg}`);
  }
  errs.push(...validateAnnotationsSize(annotations));
  return errs;
}

/** A strict C identifier: `[A-Za-z_][A-Za-z0-9_]*`. */
export function validateCIdentifier(value: string): string[] {
  if (C_IDENTIFIER.test(value)) return [];
  return ["must be a C identifier: letters, digits and '_', not starting with a digit (e.g. 'MY_NAME')"];
}

/**
 * Environment variable name. Kubernetes accepts more than C identifiers
 * (`[-._a-zA-Z][-._a-zA-Z0-9]*`) but rejects '.', '..' and a '..' prefix, which would read as
 * directory traversal where names become file names.
 */
export function validateEnvVarName(value: string): string[] {
  const errs: string[] = [];
  if (!ENV_VAR_NAME.test(value)) {
    errs.push(
      "must consist of letters, digits, '_', '-' or '.', and must not start with a digit " +
        "(e.g. 'MY_ENV.NAME' or 'my-env-name')",
    );
  }
  if (value === "." || value === "..") errs.push(`must not be '${value}'`);
  else if (value.startsWith("..")) errs.push("must not start with '..'");
  return errs;
}

/**
 * Port name (IANA_SVC_NAME, RFC 6335): ≤15 lowercase letters, digits and '-', at least one
 * letter, no leading, trailing or doubled '-'. Lowercase only, as in Kubernetes.
 */
export function validatePortName(value: string): string[] {
  if (value === "") return ["must not be empty"];
  const errs: string[] = [];
  if (value.length > PORT_NAME_MAX_LENGTH) errs.push(tooLong(PORT_NAME_MAX_LENGTH));
  if (!PORT_NAME_CHARS.test(value)) {
    errs.push("must contain only lower case letters, digits and '-' (e.g. 'http' or 'metrics-9090')");
  }
  if (!/[a-z]/.test(value)) errs.push("must contain at least one letter");
  if (value.includes("--")) errs.push("must not contain consecutive hyphens");
  if (value.startsWith("-") || value.endsWith("-")) errs.push("must not begin or end with a hyphen");
  return errs;
}

// No vowels (so suffixes never spell words) and no 0/1/3 (easily confused with o/l/e).
export const NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789";
export const NAME_SUFFIX_LENGTH = 5;
// As Kubernetes does, keep generated names within a DNS-1123 label so they fit every kind.
export const MAX_GENERATE_NAME_PREFIX_LENGTH = DNS1123_LABEL_MAX_LENGTH - NAME_SUFFIX_LENGTH;

/** Five random characters for `metadata.generateName`. `randomIndex` is injectable for tests. */
export function generateNameSuffix(randomIndex: (n: number) => number = randomInt): string {
  let out = "";
  for (let i = 0; i < NAME_SUFFIX_LENGTH; i++) out += NAME_SUFFIX_ALPHABET[randomIndex(NAME_SUFFIX_ALPHABET.length)];
  return out;
}

/** `generateName` prefix (truncated to 58 characters) plus a random suffix. */
export function generateName(prefix: string, randomIndex?: (n: number) => number): string {
  return prefix.slice(0, MAX_GENERATE_NAME_PREFIX_LENGTH) + generateNameSuffix(randomIndex);
}
