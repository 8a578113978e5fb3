import { describe, expect, it } from "vitest";
import type { FieldSelector, LabelSelectorObject } from "./selector.ts";
import {
  EVERYTHING,
  NOTHING,
  SelectorError,
  formatFieldSelector,
  formatLabelSelector,
  isEverything,
  labelSelectorFromObject,
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
  requirementsForIndex,
  validateFieldSelector,
  validateLabelSelectorObject,
} from "./selector.ts";

describe("parseLabelSelector: structure", () => {
  it.each<[string, { key: string; operator: string; values: string[] }[]]>([
    ["", []],
    ["   ", []],
    ["a=b", [{ key: "a", operator: "Equals", values: ["b"] }]],
    ["a==b", [{ key: "a", operator: "Equals", values: ["b"] }]],
    ["a!=b", [{ key: "a", operator: "NotEquals", values: ["b"] }]],
    ["a=", [{ key: "a", operator: "Equals", values: [""] }]],
    ["a!=", [{ key: "a", operator: "NotEquals", values: [""] }]],
    ["a in (x,y)", [{ key: "a", operator: "In", values: ["x", "y"] }]],
    ["a in (y,x,y)", [{ key: "a", operator: "In", values: ["x", "y"] }]],
    ["a notin (x)", [{ key: "a", operator: "NotIn", values: ["x"] }]],
    ["a in (,x)", [{ key: "a", operator: "In", values: ["", "x"] }]],
    ["a", [{ key: "a", operator: "Exists", values: [] }]],
    ["!a", [{ key: "a", operator: "DoesNotExist", values: [] }]],
    ["app.kubernetes.io/name=web", [{ key: "app.kubernetes.io/name", operator: "Equals", values: ["web"] }]],
    ["in=notin", [{ key: "in", operator: "Equals", values: ["notin"] }]],
    ["a in (in)", [{ key: "a", operator: "In", values: ["in"] }]],
    [
      "b=1,a=2",
      [
        { key: "a", operator: "Equals", values: ["2"] },
        { key: "b", operator: "Equals", values: ["1"] },
      ],
    ],
    [
      "a=1,a!=2",
      [
        { key: "a", operator: "Equals", values: ["1"] },
        { key: "a", operator: "NotEquals", values: ["2"] },
      ],
    ],
  ])("%j", (s, want) => {
    expect(parseLabelSelector(s).requirements).toEqual(want);
  });
});

describe("parseLabelSelector: odd spacing", () => {
  it.each<[string, string]>([
    ["  a = b  ", "a=b"],
    ["a  ==  b", "a=b"],
    ["a\t!=\nb", "a!=b"],
    ["a in(x,y)", "a in (x,y)"],
    ["a notin( x , y )", "a notin (x,y)"],
    ["a   in   (  x  ,y  )", "a in (x,y)"],
    ["!   a", "!a"],
    [" a , b ", "a,b"],
    ["x=1 ,  !y,z in (p)", "x=1,!y,z in (p)"],
    ["tier  =  ,env", "env,tier="],
    ["a=b,c!=d,e in (f,g),h notin (i),j,!k", "a=b,c!=d,e in (f,g),h notin (i),j,!k"],
  ])("%j → %j", (s, canonical) => {
    expect(formatLabelSelector(parseLabelSelector(s))).toBe(canonical);
  });
});

describe("parseLabelSelector: errors", () => {
  it.each<[string, string]>([
    ["a=b c=d", 'expected "," or end of input after a requirement but found "c" at position 4'],
    ["a b", 'expected an operator (=, ==, !=, in, notin) after key "a" but found "b" at position 2'],
    ["a=b,", "empty requirement at position 4"],
    [",a", "empty requirement at position 0"],
    ["a,,b", "empty requirement at position 2"],
    ["a in ()", '"a in" needs at least one value'],
    ["a in ( )", '"a in" needs at least one value'],
    ["a in (x", 'missing ")" after the values of "a in"'],
    ["a in x", 'expected "(" after "a in" but found "x" at position 5'],
    ["a in (x y)", 'expected "," or ")" in the values of "a" but found "y" at position 8'],
    ["a in (x=y)", 'unexpected "=" at position 7 in the values of "a"'],
    ["a notin", 'expected "(" after "a notin" but found end of input'],
    ["a>1", 'operator ">" at position 1 is not supported'],
    ["a<1", 'operator "<" at position 1 is not supported'],
    ["!", 'expected a label key after "!" but found end of input'],
    ["!=a", 'expected a label key or "!" but found "!=" at position 0'],
    ["!a=b", 'expected "," or end of input after a requirement but found "=" at position 2'],
    ["=b", 'expected a label key or "!" but found "=" at position 0'],
    ["(a)", 'expected a label key or "!" but found "(" at position 0'],
    ["a=(b)", 'expected a value after "a=" but found "(" at position 2'],
    ["a=b=c", 'found "=" at position 3'],
    ["-a=b", 'key "-a": name part must consist'],
    ["Foo.com/a=b", 'key "Foo.com/a": prefix part'],
    ["a/b/c", 'key "a/b/c"'],
    ["a=-b", 'value "-b" for key "a"'],
    [`a=${"x".repeat(64)}`, "must be no more than 63 characters"],
    ["a in (ok,bad!)", 'unexpected "!" at position 12 in the values of "a"'],
    ["a in (ok,-bad)", 'value "-bad" for key "a"'],
  ])("%j", (s, part) => {
    expect(() => parseLabelSelector(s)).toThrow(SelectorError);
    expect(() => parseLabelSelector(s)).toThrow(part);
  });

  it("quotes the whole selector in the message", () => {
    expect(() => parseLabelSelector("a=b c")).toThrow(/^invalid label selector "a=b c": /);
  });
});

describe("matchesLabels", () => {
  const labels = { app: "web", tier: "frontend", empty: "" };
  it.each<[string, boolean]>([
    ["", true],
    ["app=web", true],
    ["app==web", true],
    ["app=db", false],
    ["missing=x", false],
    ["app!=db", true],
    ["app!=web", false],
    ["missing!=x", true],
    ["app in (web,db)", true],
    ["app in (db)", false],
    ["missing in (x)", false],
    ["app notin (db)", true],
    ["app notin (web,db)", false],
    ["missing notin (x)", true],
    ["app", true],
    ["missing", false],
    ["!missing", true],
    ["!app", false],
    ["empty=", true],
    ["empty", true],
    ["missing=", false],
    ["empty in (,x)", true],
    ["app=web,tier=frontend", true],
    ["app=web,tier=backend", false],
    ["app=web,!tier", false],
    ["app=web,app!=web", false],
    ["constructor", false],
    ["toString=x", false],
    ["!hasOwnProperty", true],
  ])("%j → %s", (s, want) => {
    expect(matchesLabels(parseLabelSelector(s), labels)).toBe(want);
  });

  it("treats missing labels as an empty map", () => {
    expect(matchesLabels(parseLabelSelector(""), undefined)).toBe(true);
    expect(matchesLabels(parseLabelSelector("!a"), null)).toBe(true);
    expect(matchesLabels(parseLabelSelector("a"), undefined)).toBe(false);
  });

  it("NOTHING matches nothing, EVERYTHING everything", () => {
    expect(matchesLabels(NOTHING, {})).toBe(false);
    expect(matchesLabels(NOTHING, labels)).toBe(false);
    expect(matchesLabels(EVERYTHING, {})).toBe(true);
  });
});

describe("labelSelectorFromObject", () => {
  it.each<[LabelSelectorObject, string]>([
    [{}, ""],
    [{ matchLabels: null, matchExpressions: null }, ""],
    [{ matchLabels: {} }, ""],
    [{ matchLabels: { app: "web", tier: "fe" } }, "app=web,tier=fe"],
    [{ matchLabels: { app: "" } }, "app="],
    [{ matchExpressions: [{ key: "env", operator: "In", values: ["prod", "dev"] }] }, "env in (dev,prod)"],
    [{ matchExpressions: [{ key: "env", operator: "NotIn", values: ["x"] }] }, "env notin (x)"],
    [{ matchExpressions: [{ key: "gpu", operator: "Exists" }] }, "gpu"],
    [{ matchExpressions: [{ key: "gpu", operator: "DoesNotExist", values: [] }] }, "!gpu"],
    [{ matchExpressions: [{ key: "gpu", operator: "Exists", values: null }] }, "gpu"],
    [
      {
        matchLabels: { app: "web" },
        matchExpressions: [
          { key: "tier", operator: "In", values: ["fe"] },
          { key: "canary", operator: "DoesNotExist" },
        ],
      },
      "app=web,!canary,tier in (fe)",
    ],
  ])("%j → %j", (obj, s) => {
    expect(formatLabelSelector(labelSelectorFromObject(obj))).toBe(s);
  });

  it("matches like the equivalent string", () => {
    const sel = labelSelectorFromObject({
      matchLabels: { app: "web" },
      matchExpressions: [{ key: "env", operator: "NotIn", values: ["dev"] }],
    });
    expect(matchesLabels(sel, { app: "web", env: "prod" })).toBe(true);
    expect(matchesLabels(sel, { app: "web" })).toBe(true);
    expect(matchesLabels(sel, { app: "web", env: "dev" })).toBe(false);
    expect(matchesLabels(sel, { env: "prod" })).toBe(false);
  });

  it("an absent selector matches nothing", () => {
    expect(labelSelectorFromObject(undefined)).toBe(NOTHING);
    expect(labelSelectorFromObject(null)).toBe(NOTHING);
    expect(isEverything(labelSelectorFromObject(null))).toBe(false);
    expect(() => formatLabelSelector(NOTHING)).toThrow(SelectorError);
  });

  it.each<[LabelSelectorObject, { field: string; message: string }[]]>([
    [
      { matchLabels: { "bad key": "v" } },
      [{ field: "spec.selector.matchLabels[bad key]", message: expect.stringContaining('key "bad key"') }],
    ],
    [
      { matchLabels: { app: "bad value" } },
      [{ field: "spec.selector.matchLabels[app]", message: expect.stringContaining('value "bad value" for key "app"') }],
    ],
    [
      { matchExpressions: [{ key: "a", operator: "Equals", values: ["x"] }] },
      [
        {
          field: "spec.selector.matchExpressions[0].operator",
          message: '"Equals" is not a valid operator; must be one of In, NotIn, Exists, DoesNotExist',
        },
      ],
    ],
    [
      { matchExpressions: [{ key: "a", operator: "in", values: ["x"] }] },
      [{ field: "spec.selector.matchExpressions[0].operator", message: expect.stringContaining('"in"') }],
    ],
    [
      { matchExpressions: [{ key: "a", operator: "In", values: [] }] },
      [{ field: "spec.selector.matchExpressions[0].values", message: "must be non-empty when operator is In" }],
    ],
    [
      { matchExpressions: [{ key: "a", operator: "NotIn" }] },
      [{ field: "spec.selector.matchExpressions[0].values", message: "must be non-empty when operator is NotIn" }],
    ],
    [
      { matchExpressions: [{ key: "a", operator: "Exists", values: ["x"] }] },
      [{ field: "spec.selector.matchExpressions[0].values", message: "must be empty when operator is Exists" }],
    ],
    [
      { matchExpressions: [{ key: "a", operator: "DoesNotExist", values: ["x"] }] },
      [{ field: "spec.selector.matchExpressions[0].values", message: "must be empty when operator is DoesNotExist" }],
    ],
    [
      { matchExpressions: [{ key: "", operator: "Exists" }] },
      [{ field: "spec.selector.matchExpressions[0].key", message: "name part must not be empty" }],
    ],
    [
      {
        matchExpressions: [
          { key: "ok", operator: "Exists" },
          { key: "a", operator: "In", values: ["fine", "-bad"] },
        ],
      },
      [{ field: "spec.selector.matchExpressions[1].values[1]", message: expect.stringContaining("must be empty or consist") }],
    ],
  ])("rejects %j", (obj, want) => {
    expect(validateLabelSelectorObject(obj, "spec.selector")).toEqual(want);
    let thrown: unknown;
    try {
      labelSelectorFromObject(obj, "spec.selector");
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(SelectorError);
    expect((thrown as SelectorError).violations).toEqual(want);
    expect((thrown as SelectorError).message).toContain(want[0].field);
  });

  it("reports every violation at once, with the default path", () => {
    const v = validateLabelSelectorObject({
      matchLabels: { "-a": "b" },
      matchExpressions: [{ key: "x", operator: "Nope" }],
    });
    expect(v.map((x) => x.field)).toEqual(["selector.matchLabels[-a]", "selector.matchExpressions[0].operator"]);
  });
});

describe("formatLabelSelector round trip", () => {
  it.each([
    "a=b",
    "a!=b",
    "a in (x,y)",
    "a notin (x)",
    "a",
    "!a",
    "a=",
    "a in (,x)",
    "app.kubernetes.io/name=web,tier in (a,b),!canary",
  ])("%j", (s) => {
    const sel = parseLabelSelector(s);
    expect(parseLabelSelector(formatLabelSelector(sel))).toEqual(sel);
  });
});

describe("isEverything", () => {
  it.each<[string, boolean]>([
    ["", true],
    ["  ", true],
    ["a", false],
    ["a=b", false],
  ])("label %j → %s", (s, want) => {
    expect(isEverything(parseLabelSelector(s))).toBe(want);
  });
  it.each<[string, boolean]>([
    ["", true],
    ["a=b", false],
  ])("field %j → %s", (s, want) => {
    expect(isEverything(parseFieldSelector(s))).toBe(want);
  });
  it("handles the constants and structured selectors", () => {
    expect(isEverything(EVERYTHING)).toBe(true);
    expect(isEverything(NOTHING)).toBe(false);
    expect(isEverything(labelSelectorFromObject({}))).toBe(true);
  });
});

describe("parseFieldSelector", () => {
  it.each<[string, { field: string; operator: string; value: string }[]]>([
    ["", []],
    ["  ", []],
    ["spec.nodeName=node-1", [{ field: "spec.nodeName", operator: "Equals", value: "node-1" }]],
    ["spec.nodeName==node-1", [{ field: "spec.nodeName", operator: "Equals", value: "node-1" }]],
    ["status.phase!=Running", [{ field: "status.phase", operator: "NotEquals", value: "Running" }]],
    ["spec.nodeName=", [{ field: "spec.nodeName", operator: "Equals", value: "" }]],
    ["spec.nodeName!=", [{ field: "spec.nodeName", operator: "NotEquals", value: "" }]],
    ["  metadata.name  =  x  ", [{ field: "metadata.name", operator: "Equals", value: "x" }]],
    ["a=x\\,y", [{ field: "a", operator: "Equals", value: "x,y" }]],
    ["a=x\\=y", [{ field: "a", operator: "Equals", value: "x=y" }]],
    ["a=x\\\\y", [{ field: "a", operator: "Equals", value: "x\\y" }]],
    ["a=x!y", [{ field: "a", operator: "Equals", value: "x!y" }]],
    ["a=has space", [{ field: "a", operator: "Equals", value: "has space" }]],
    [
      "metadata.namespace=default , metadata.name!=x",
      [
        { field: "metadata.name", operator: "NotEquals", value: "x" },
        { field: "metadata.namespace", operator: "Equals", value: "default" },
      ],
    ],
  ])("%j", (s, want) => {
    expect(parseFieldSelector(s).requirements).toEqual(want);
  });

  it.each<[string, string]>([
    ["spec.nodeName", '"spec.nodeName" has no operator (expected field=value, field==value or field!=value)'],
    ["=x", '"=x" has no field name'],
    ["a=b,", "empty requirement"],
    ["a=b,,c=d", "empty requirement"],
    [",a=b", "empty requirement"],
    ["a=b=c", 'unescaped "=" in value "b=c"'],
    ["a===b", 'unescaped "=" in value "=b"'],
    ["a=\\q", 'invalid escape "\\q"'],
    ["a=b\\", 'invalid escape "\\"'],
    ["spec nodeName=x", '"spec nodeName" is not a valid field name'],
    ["a!b=c", '"a!b" is not a valid field name'],
    [".a=b", '".a" is not a valid field name'],
  ])("rejects %j", (s, part) => {
    expect(() => parseFieldSelector(s)).toThrow(SelectorError);
    expect(() => parseFieldSelector(s)).toThrow(part);
  });

  it("quotes the whole selector in the message", () => {
    expect(() => parseFieldSelector("foo")).toThrow(/^invalid field selector "foo": /);
  });
});

describe("matchesFields", () => {
  const pod: Record<string, string | undefined> = {
    "metadata.name": "web-1",
    "metadata.namespace": "default",
    "spec.nodeName": undefined,
    "status.phase": "Pending",
  };
  const get = (f: string) => pod[f];
  it.each<[string, boolean]>([
    ["", true],
    ["metadata.name=web-1", true],
    ["metadata.name=web-2", false],
    ["metadata.name!=web-2", true],
    ["metadata.name!=web-1", false],
    ["spec.nodeName=", true], // unscheduled pods
    ["spec.nodeName!=", false],
    ["spec.nodeName=node-1", false],
    ["status.phase!=Running,metadata.namespace=default", true],
    ["status.phase!=Pending,metadata.namespace=default", false],
    ["unknown=", true],
  ])("%j → %s", (s, want) => {
    expect(matchesFields(parseFieldSelector(s), get)).toBe(want);
  });
});

describe("formatFieldSelector", () => {
  it.each<[string, string]>([
    ["", ""],
    ["b=1,a!=2", "a!=2,b=1"],
    ["a==b", "a=b"],
    ["spec.nodeName=", "spec.nodeName="],
    ["a=x\\,y\\=z\\\\w", "a=x\\,y\\=z\\\\w"],
  ])("%j → %j and back", (s, out) => {
    const sel = parseFieldSelector(s);
    expect(formatFieldSelector(sel)).toBe(out);
    expect(parseFieldSelector(formatFieldSelector(sel))).toEqual(sel);
  });
});

describe("validateFieldSelector", () => {
  const allowed = ["metadata.name", "metadata.namespace", "spec.nodeName", "status.phase"];
  it("accepts known fields", () => {
    expect(validateFieldSelector(parseFieldSelector("spec.nodeName=n,status.phase!=Failed"), allowed)).toEqual([]);
    expect(validateFieldSelector(parseFieldSelector(""), [])).toEqual([]);
  });
  it("lists the allowed fields for an unknown one, once per field", () => {
    expect(validateFieldSelector(parseFieldSelector("spec.host=a,spec.host!=b,metadata.name=x"), allowed)).toEqual([
      'field selector "spec.host" is not supported; supported fields: metadata.name, metadata.namespace, spec.nodeName, status.phase',
    ]);
  });
  it("says so when a resource supports none", () => {
    expect(validateFieldSelector(parseFieldSelector("a=b"), [])).toEqual([
      'field selector "a" is not supported; this resource supports no field selectors',
    ]);
  });
});

describe("requirementsForIndex", () => {
  it.each<[string, { key: string; value: string }[]]>([
    ["", []],
    ["app=web", [{ key: "app", value: "web" }]],
    ["app==web", [{ key: "app", value: "web" }]],
    ["app in (web)", [{ key: "app", value: "web" }]],
    ["app in (web,db)", []],
    ["app!=web", []],
    ["app notin (web)", []],
    ["app", []],
    ["!app", []],
    ["tier=,app=web", [{ key: "app", value: "web" }, { key: "tier", value: "" }]],
    ["app=web,tier!=x,env in (prod),gpu", [{ key: "app", value: "web" }, { key: "env", value: "prod" }]],
  ])("label %j", (s, want) => {
    expect(requirementsForIndex(parseLabelSelector(s))).toEqual(want);
  });

  it.each<[string, { key: string; value: string }[]]>([
    ["", []],
    ["spec.nodeName=node-1", [{ key: "spec.nodeName", value: "node-1" }]],
    ["spec.nodeName=", [{ key: "spec.nodeName", value: "" }]],
    ["spec.nodeName!=node-1", []],
    ["status.phase!=Failed,spec.nodeName==n", [{ key: "spec.nodeName", value: "n" }]],
  ])("field %j", (s, want) => {
    expect(requirementsForIndex(parseFieldSelector(s))).toEqual(want);
  });

  it("works on structured selectors and NOTHING", () => {
    const sel = labelSelectorFromObject({ matchLabels: { app: "web" } });
    expect(requirementsForIndex(sel)).toEqual([{ key: "app", value: "web" }]);
    expect(requirementsForIndex(NOTHING)).toEqual([]);
    const fs: FieldSelector = { requirements: [] };
    expect(requirementsForIndex(fs)).toEqual([]);
  });
});
