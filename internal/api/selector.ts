// Label and field selectors with Kubernetes syntax and semantics.
//
// Label selector strings (comma = AND, whitespace anywhere between tokens):
//   key=value  key==value  key!=value  key in (v1,v2)  key notin (v1)  key  !key
// Field selector strings: field=value  field==value  field!=value, where '\' escapes
// '\', ',' and '=' inside a value.

import type { FieldViolation } from "./names.ts";
import { validateLabelKey, validateLabelValue } from "./names.ts";

export type LabelOperator = "Equals" | "NotEquals" | "In" | "NotIn" | "Exists" | "DoesNotExist";

export interface LabelRequirement {
  readonly key: string;
  readonly operator: LabelOperator;
  /** One value for Equals/NotEquals, a sorted set for In/NotIn, none for Exists/DoesNotExist. */
  readonly values: readonly string[];
}

export interface LabelSelector {
  /** ANDed together, sorted by key. None = match everything. */
  readonly requirements: readonly LabelRequirement[];
  /** Set for the selector of an absent structured selector: it matches no object. */
  readonly matchesNothing?: true;
}

export type FieldOperator = "Equals" | "NotEquals";

export interface FieldRequirement {
  readonly field: string;
  readonly operator: FieldOperator;
  readonly value: string;
}

export interface FieldSelector {
  /** ANDed together, sorted by field. None = match everything. */
  readonly requirements: readonly FieldRequirement[];
}

/** The structured selector of ReplicaSet/Deployment specs (Kubernetes' metav1.LabelSelector). */
export interface LabelSelectorObject {
  matchLabels?: Record<string, string> | null;
  matchExpressions?: readonly LabelSelectorExpression[] | null;
}

export interface LabelSelectorExpression {
  key: string;
  /** "In" | "NotIn" | "Exists" | "DoesNotExist" */
  operator: string;
  values?: readonly string[] | null;
}

/** An exact `key = value` constraint a caller can answer from an index. */
export interface IndexRequirement {
  readonly key: string;
  readonly value: string;
}

export class SelectorError extends Error {
  override name = "SelectorError";
  /** Set for structured selectors: every problem with its field path. */
  readonly violations: readonly FieldViolation[];
  constructor(message: string, violations: readonly FieldViolation[] = []) {
    super(message);
    this.violations = violations;
  }
}

export const EVERYTHING: LabelSelector = { requirements: [] };
export const NOTHING: LabelSelector = { requirements: [], matchesNothing: true };

// ---- label selectors: building ----

function byKey(a: LabelRequirement, b: LabelRequirement): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

function setOf(values: readonly string[]): string[] {
  return [...new Set(values)].sort();
}

function makeLabelSelector(reqs: LabelRequirement[]): LabelSelector {
  // Sorted so equal selectors format identically (handy as cache keys); sort is stable.
  return { requirements: reqs.sort(byKey) };
}

function labelProblems(key: string, values: readonly string[]): string[] {
  const out: string[] = [];
  for (const msg of validateLabelKey(key)) out.push(`key "${key}": ${msg}`);
  for (const v of values) {
    for (const msg of validateLabelValue(v)) out.push(`value "${v}" for key "${key}": ${msg}`);
  }
  return out;
}

// ---- label selectors: string syntax ----

type TokenKind = "ident" | "!" | "=" | "==" | "!=" | "(" | ")" | "," | "end";

interface Token {
  kind: TokenKind;
  text: string;
  pos: number;
}

const SPECIAL = new Set(["!", "=", "(", ")", ",", "<", ">"]);

function tokenize(s: string, err: (msg: string) => never): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i];
    if (/\s/.test(c)) {
      i++;
    } else if (c === "<" || c === ">") {
      err(`operator "${c}" at position ${i} is not supported (use =, ==, !=, in, notin, or !)`);
    } else if (c === "!" || c === "=") {
      const two = s.slice(i, i + 2);
      if (two === "!=" || two === "==") {
        tokens.push({ kind: two, text: two, pos: i });
        i += 2;
      } else {
        tokens.push({ kind: c, text: c, pos: i });
        i++;
      }
    } else if (c === "(" || c === ")" || c === ",") {
      tokens.push({ kind: c, text: c, pos: i });
      i++;
    } else {
      const start = i;
      while (i < s.length && !SPECIAL.has(s[i]) && !/\s/.test(s[i])) i++;
      tokens.push({ kind: "ident", text: s.slice(start, i), pos: start });
    }
  }
  tokens.push({ kind: "end", text: "end of input", pos: s.length });
  return tokens;
}

function describe(t: Token): string {
  return t.kind === "end" ? "end of input" : `"${t.text}" at position ${t.pos}`;
}

/**
 * Parse a label selector string. An empty (or all-whitespace) string selects everything.
 * Throws SelectorError naming the offending part.
 */
export function parseLabelSelector(s: string): LabelSelector {
  const err = (msg: string): never => {
    throw new SelectorError(`invalid label selector "${s}": ${msg}`);
  };
  const tokens = tokenize(s, err);
  let p = 0;
  const peek = (): Token => tokens[p];
  const next = (): Token => tokens[p++];
  const reqs: LabelRequirement[] = [];
  if (peek().kind === "end") return EVERYTHING;

  const checked = (key: string, operator: LabelOperator, values: string[]): LabelRequirement => {
    const problems = labelProblems(key, values);
    if (problems.length > 0) err(problems.join("; "));
    return { key, operator, values };
  };

  for (;;) {
    const first = next();
    if (first.kind === "!") {
      const key = next();
      if (key.kind !== "ident") err(`expected a label key after "!" but found ${describe(key)}`);
      reqs.push(checked(key.text, "DoesNotExist", []));
    } else if (first.kind === "ident") {
      reqs.push(parseAfterKey(first.text));
    } else if (first.kind === "end" || first.kind === ",") {
      err(`empty requirement at position ${first.pos}`);
    } else {
      err(`expected a label key or "!" but found ${describe(first)}`);
    }
    const sep = next();
    if (sep.kind === "end") break;
    if (sep.kind !== ",") err(`expected "," or end of input after a requirement but found ${describe(sep)}`);
  }
  return makeLabelSelector(reqs);

  function parseAfterKey(key: string): LabelRequirement {
    const op = peek();
    if (op.kind === "end" || op.kind === ",") return checked(key, "Exists", []);
    next();
    if (op.kind === "=" || op.kind === "==" || op.kind === "!=") {
      // A missing value means the empty value, as in Kubernetes ("tier=" selects tier="").
      const v = peek();
      let value = "";
      if (v.kind === "ident") value = next().text;
      else if (v.kind !== "end" && v.kind !== ",") err(`expected a value after "${key}${op.text}" but found ${describe(v)}`);
      return checked(key, op.kind === "!=" ? "NotEquals" : "Equals", [value]);
    }
    if (op.kind === "ident" && (op.text === "in" || op.text === "notin")) {
      const open = next();
      if (open.kind !== "(") err(`expected "(" after "${key} ${op.text}" but found ${describe(open)}`);
      const values = parseValueSet(key, op.text);
      return checked(key, op.text === "in" ? "In" : "NotIn", setOf(values));
    }
    return err(`expected an operator (=, ==, !=, in, notin) after key "${key}" but found ${describe(op)}`);
  }

  // After "(": values separated by commas up to ")". An empty slot is the empty value.
  function parseValueSet(key: string, opText: string): string[] {
    const values: string[] = [];
    let current: string | undefined;
    let sawAny = false;
    for (;;) {
      const t = next();
      if (t.kind === "ident") {
        if (current !== undefined) err(`expected "," or ")" in the values of "${key}" but found ${describe(t)}`);
        current = t.text;
        sawAny = true;
      } else if (t.kind === ",") {
        values.push(current ?? "");
        current = undefined;
        sawAny = true;
      } else if (t.kind === ")") {
        if (!sawAny) err(`"${key} ${opText}" needs at least one value`);
        values.push(current ?? "");
        return values;
      } else if (t.kind === "end") {
        return err(`missing ")" after the values of "${key} ${opText}"`);
      } else {
        err(`unexpected ${describe(t)} in the values of "${key}"`);
      }
    }
  }
}

// ---- label selectors: structured form ----

const EXPRESSION_OPERATORS = ["In", "NotIn", "Exists", "DoesNotExist"];

/** Every problem with a structured selector, with field paths under `path`. */
export function validateLabelSelectorObject(obj: LabelSelectorObject, path = "selector"): FieldViolation[] {
  const out: FieldViolation[] = [];
  for (const [k, v] of Object.entries(obj.matchLabels ?? {})) {
    for (const msg of labelProblems(k, [v])) out.push({ field: `${path}.matchLabels[${k}]`, message: msg });
  }
  (obj.matchExpressions ?? []).forEach((e, i) => {
    const at = `${path}.matchExpressions[${i}]`;
    for (const msg of validateLabelKey(e.key ?? "")) out.push({ field: `${at}.key`, message: msg });
    const values = e.values ?? [];
    if (!EXPRESSION_OPERATORS.includes(e.operator)) {
      out.push({
        field: `${at}.operator`,
        message: `"${e.operator}" is not a valid operator; must be one of ${EXPRESSION_OPERATORS.join(", ")}`,
      });
    } else if ((e.operator === "In" || e.operator === "NotIn") && values.length === 0) {
      out.push({ field: `${at}.values`, message: `must be non-empty when operator is ${e.operator}` });
    } else if ((e.operator === "Exists" || e.operator === "DoesNotExist") && values.length > 0) {
      out.push({ field: `${at}.values`, message: `must be empty when operator is ${e.operator}` });
    }
    values.forEach((v, j) => {
      for (const msg of validateLabelValue(v)) out.push({ field: `${at}.values[${j}]`, message: msg });
    });
  });
  return out;
}

/**
 * The selector for a structured `{matchLabels, matchExpressions}`. `{}` selects everything; an
 * absent selector (null/undefined) selects nothing, as in Kubernetes. Throws SelectorError with
 * `violations` listing every problem.
 */
export function labelSelectorFromObject(
  obj: LabelSelectorObject | null | undefined,
  path = "selector",
): LabelSelector {
  if (obj === null || obj === undefined) return NOTHING;
  const violations = validateLabelSelectorObject(obj, path);
  if (violations.length > 0) {
    const detail = violations.map((v) => `${v.field}: ${v.message}`).join("; ");
    throw new SelectorError(`invalid label selector: ${detail}`, violations);
  }
  const reqs: LabelRequirement[] = [];
  for (const [k, v] of Object.entries(obj.matchLabels ?? {})) reqs.push({ key: k, operator: "Equals", values: [v] });
  for (const e of obj.matchExpressions ?? []) {
    reqs.push({ key: e.key, operator: e.operator as LabelOperator, values: setOf(e.values ?? []) });
  }
  return makeLabelSelector(reqs);
}

// ---- label selectors: use ----

/** Whether an object's labels satisfy every requirement. */
export function matchesLabels(sel: LabelSelector, labels: Record<string, string> | null | undefined): boolean {
  if (sel.matchesNothing) return false;
  const ls = labels ?? {};
  return sel.requirements.every((r) => {
    // hasOwn, so keys like "constructor" never read the prototype.
    const has = Object.hasOwn(ls, r.key);
    switch (r.operator) {
      case "Exists":
        return has;
      case "DoesNotExist":
        return !has;
      case "Equals":
      case "In":
        return has && r.values.includes(ls[r.key]);
      case "NotEquals":
      case "NotIn":
        return !has || !r.values.includes(ls[r.key]);
    }
  });
}

function formatRequirement(r: LabelRequirement): string {
  switch (r.operator) {
    case "Exists":
      return r.key;
    case "DoesNotExist":
      return `!${r.key}`;
    case "Equals":
      return `${r.key}=${r.values[0]}`;
    case "NotEquals":
      return `${r.key}!=${r.values[0]}`;
    case "In":
      return `${r.key} in (${r.values.join(",")})`;
    case "NotIn":
      return `${r.key} notin (${r.values.join(",")})`;
  }
}

/**
 * The canonical string form, which parseLabelSelector reads back. Everything formats as "".
 * A match-nothing selector has no string form and throws rather than widen to everything.
 */
export function formatLabelSelector(sel: LabelSelector): string {
  if (sel.matchesNothing) throw new SelectorError("a selector that matches nothing has no string form");
  return sel.requirements.map(formatRequirement).join(",");
}

/** True when the selector has no requirements (and so matches every object). */
export function isEverything(sel: LabelSelector | FieldSelector): boolean {
  return sel.requirements.length === 0 && !("matchesNothing" in sel && sel.matchesNothing);
}

// ---- field selectors ----

// Splits on unescaped commas; escapes are kept for the term parser.
function splitTerms(s: string): string[] {
  const terms: string[] = [];
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "\\") i++;
    else if (s[i] === ",") {
      terms.push(s.slice(start, i));
      start = i + 1;
    }
  }
  terms.push(s.slice(start));
  return terms;
}

function unescapeValue(v: string, err: (msg: string) => never): string {
  let out = "";
  for (let i = 0; i < v.length; i++) {
    const c = v[i];
    if (c === "\\") {
      const n = v[i + 1];
      if (n !== "\\" && n !== "," && n !== "=") err(`invalid escape "\\${n ?? ""}" in value "${v}" (only \\\\, \\, and \\= are allowed)`);
      out += n;
      i++;
    } else if (c === "=" || c === ",") {
      err(`unescaped "${c}" in value "${v}" (write \\${c})`);
    } else {
      out += c;
    }
  }
  return out;
}

const FIELD_NAME = /^[A-Za-z0-9_][A-Za-z0-9_./-]*$/;

/** Parse a field selector string. An empty (or all-whitespace) string selects everything. */
export function parseFieldSelector(s: string): FieldSelector {
  const err = (msg: string): never => {
    throw new SelectorError(`invalid field selector "${s}": ${msg}`);
  };
  if (s.trim() === "") return { requirements: [] };
  const reqs: FieldRequirement[] = [];
  for (const raw of splitTerms(s)) {
    const term = raw.trim();
    if (term === "") err("empty requirement (check for a stray ',')");
    // The first unescaped operator splits the term.
    let opAt = -1;
    let opLen = 0;
    let operator: FieldOperator = "Equals";
    for (let i = 0; i < term.length; i++) {
      if (term[i] === "\\") {
        i++;
      } else if (term[i] === "!" && term[i + 1] === "=") {
        opAt = i;
        opLen = 2;
        operator = "NotEquals";
        break;
      } else if (term[i] === "=") {
        opAt = i;
        opLen = term[i + 1] === "=" ? 2 : 1;
        break;
      }
    }
    if (opAt < 0) err(`"${term}" has no operator (expected field=value, field==value or field!=value)`);
    const field = term.slice(0, opAt).trim();
    if (field === "") err(`"${term}" has no field name`);
    if (!FIELD_NAME.test(field)) err(`"${field}" is not a valid field name (e.g. "spec.nodeName")`);
    const value = unescapeValue(term.slice(opAt + opLen).trim(), err);
    reqs.push({ field, operator, value });
  }
  reqs.sort((a, b) => (a.field < b.field ? -1 : a.field > b.field ? 1 : 0));
  return { requirements: reqs };
}

/**
 * Whether an object satisfies the selector. `get` returns a field's value; undefined counts
 * as the empty string, so `spec.nodeName=` matches an unscheduled pod.
 */
export function matchesFields(sel: FieldSelector, get: (field: string) => string | undefined): boolean {
  return sel.requirements.every((r) => {
    const actual = get(r.field) ?? "";
    return r.operator === "Equals" ? actual === r.value : actual !== r.value;
  });
}

function escapeValue(v: string): string {
  return v.replace(/[\\,=]/g, (c) => `\\${c}`);
}

/** The canonical string form, which parseFieldSelector reads back. */
export function formatFieldSelector(sel: FieldSelector): string {
  return sel.requirements
    .map((r) => `${r.field}${r.operator === "Equals" ? "=" : "!="}${escapeValue(r.value)}`)
    .join(",");
}

/** A message for each field the resource does not support, listing those it does. */
export function validateFieldSelector(sel: FieldSelector, allowedFields: readonly string[]): string[] {
  const unknown = [...new Set(sel.requirements.map((r) => r.field))].filter((f) => !allowedFields.includes(f));
  const supported =
    allowedFields.length === 0 ? "this resource supports no field selectors" : `supported fields: ${allowedFields.join(", ")}`;
  return unknown.map((f) => `field selector "${f}" is not supported; ${supported}`);
}

// ---- indexing ----

/**
 * The exact-match requirements (`key=value`, `key==value`, `key in (one)`) of a label or field
 * selector, for answering it from an index. The caller must still apply the whole selector to
 * each candidate; an empty result means "no index applies, scan".
 */
export function requirementsForIndex(sel: LabelSelector | FieldSelector): IndexRequirement[] {
  const out: IndexRequirement[] = [];
  for (const r of sel.requirements) {
    if ("field" in r) {
      if (r.operator === "Equals") out.push({ key: r.field, value: r.value });
    } else if ((r.operator === "Equals" || r.operator === "In") && r.values.length === 1) {
      out.push({ key: r.key, value: r.values[0] });
    }
  }
  return out;
}
