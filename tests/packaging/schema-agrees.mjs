// Proves that values.schema.json accepts exactly what the agent's parser accepts for the part of
// `config` the schema describes in full (config.programs.tcp): for every key, values at and beyond
// the bounds, every enum value and a wrong one, a wrong type, and an unknown key are put through both
// `helm template` (the schema) and `podsight --validate-config` (the parser, on the chart's default
// config with that one key changed). Each case must be accepted by both or refused by both. The
// bounds and enum values come from the schema and from docs/configuration.md's range column, so a
// value the schema leaves out but the agent documents is tried too.
//
//   node schema-agrees.mjs HELM CHART AGENT WORKDIR DOCS/configuration.md
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments, stringify } from "yaml";

const [helm, chart, agent, work, docs] = process.argv.slice(2);
const schema = JSON.parse(readFileSync(join(chart, "values.schema.json"), "utf8"));
const tcpSchema = schema.properties.config.properties.programs.properties.tcp;

function run(cmd, args) {
  try {
    return { ok: true, out: execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }) };
  } catch (e) {
    return { ok: false, out: `${e.stdout ?? ""}${e.stderr ?? ""}` };
  }
}
const configOf = (rendered) =>
  JSON.parse(
    parseAllDocuments(rendered)
      .map((d) => d.toJS())
      .find((d) => d?.kind === "ConfigMap" && d.data?.["config.json"]).data["config.json"],
  );
const defaults = run(helm, ["template", "podsight", chart]);
if (!defaults.ok) throw new Error(`helm template of the defaults failed: ${defaults.out}`);
const defaultConfig = configOf(defaults.out);

// The range column of docs/configuration.md per key: `a`, `b` enum values or a LO–HI range.
const documented = new Map();
for (const line of readFileSync(docs, "utf8").split("\n")) {
  const cells = line.split("|").map((c) => c.trim());
  const key = cells[1]?.match(/^`([a-z_.]+)`$/)?.[1];
  if (!key || cells.length < 6) continue;
  const range = cells[4];
  const bounds = range.match(/^(\d+)–(\d+)$/);
  if (bounds) documented.set(key, [Number(bounds[1]), Number(bounds[2])]);
  else if (/^(`[^`]+`(, )?)+$/.test(range)) documented.set(key, [...range.matchAll(/`([^`]+)`/g)].map((m) => m[1]));
}
// Candidate values for one key: valid and invalid ones derived from the schema's constraints and
// from what the documentation says.
function candidates(node, key) {
  const doc = documented.get(key) ?? [];
  let out;
  if (node.enum) out = [...node.enum, ...doc, "bogus", 1];
  else if (node.type === "boolean") out = [true, false, "true", 1];
  else if (node.type === "integer") {
    const bounds = [node.minimum, node.maximum, ...doc];
    out = [...bounds, ...bounds.flatMap((b) => [b - 1, b + 1]), 2.5, String(node.minimum)];
  } else if (node.type === "object") out = [[], "x"];
  else throw new Error(`no candidates for ${key}: ${JSON.stringify(node)}`);
  return [...new Set(out)];
}
const cases = [];
function walk(node, path) {
  cases.push(...candidates(node, path.join(".")).map((value) => ({ path, value })));
  if (node.type === "object") {
    cases.push({ path: [...path, "no_such_key"], value: 1 });
    for (const [k, child] of Object.entries(node.properties ?? {})) walk(child, [...path, k]);
  }
}
walk(tcpSchema, ["programs", "tcp"]);

const setIn = (obj, path, value) => {
  let o = obj;
  for (const k of path.slice(0, -1)) o = o[k] = o[k] && typeof o[k] === "object" ? o[k] : {};
  o[path.at(-1)] = value;
  return obj;
};
let disagreements = 0;
for (const { path, value } of cases) {
  const name = `${path.join(".")} = ${JSON.stringify(value)}`;
  const valuesFile = join(work, "schema-case.yaml");
  writeFileSync(valuesFile, stringify({ config: setIn({}, path, value) }));
  const byHelm = run(helm, ["template", "podsight", chart, "-f", valuesFile]);
  const configFile = join(work, "schema-case.json");
  writeFileSync(configFile, JSON.stringify(setIn(structuredClone(defaultConfig), path, value)));
  const byAgent = run(agent, ["--validate-config", "--config", configFile]);
  const verdict = (r) => (r.ok ? "accepts" : "refuses");
  if (byHelm.ok === byAgent.ok) {
    console.log(`  agree (${verdict(byHelm)}): ${name}`);
    continue;
  }
  disagreements++;
  console.log(`  DISAGREE: ${name}: the schema ${verdict(byHelm)}, the agent ${verdict(byAgent)}`);
  console.log(`    helm: ${byHelm.out.trim().split("\n").slice(-2).join(" ")}`);
  console.log(`    agent: ${byAgent.out.trim()}`);
}
console.log(`${cases.length} cases, ${disagreements} disagreements`);
process.exit(disagreements ? 1 : 0);
