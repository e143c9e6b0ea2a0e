// Every alert in a rule file has at least one promtool unit test in which it fires (a non-empty
// exp_alerts), so that a new alert cannot ship untested.
//   node rules-coverage.mjs RULES.yaml TESTS.yaml...
import { readFileSync } from "node:fs";
import { parse } from "yaml";

const [rulesFile, ...testFiles] = process.argv.slice(2);
const alerts = parse(readFileSync(rulesFile, "utf8")).groups.flatMap((g) => g.rules).filter((r) => r.alert).map((r) => r.alert);
const fired = new Set();
const quiet = new Set();
for (const f of testFiles) {
  for (const t of parse(readFileSync(f, "utf8")).tests ?? []) {
    for (const a of t.alert_rule_test ?? []) (a.exp_alerts?.length ? fired : quiet).add(a.alertname);
  }
}
const untested = alerts.filter((a) => !fired.has(a));
const unknown = [...fired, ...quiet].filter((a) => !alerts.includes(a));
for (const a of untested) console.log(`alert ${a} has no unit test in which it fires`);
for (const a of new Set(unknown)) console.log(`tests name ${a}, which is not an alert in ${rulesFile}`);
console.log(`${alerts.length} alerts, ${fired.size} with a firing test, ${quiet.size} with a quiet case`);
process.exit(untested.length || unknown.length ? 1 : 0);
