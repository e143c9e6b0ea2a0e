// Validates rendered Kubernetes manifests offline, three ways:
//  1. the schema of each object's kind (npm kubernetes-models, @kubernetes-models/prometheus-operator):
//     types, enums, required fields;
//  2. no field the schema does not know (what `kubectl apply --validate=strict` and kubeconform
//     --strict reject): walked over the models' type declarations, so a misspelt key such as
//     readOnlyRootFileSystem cannot pass silently;
//  3. podsight's own rules for a node agent (least privilege, probes, mounts, labels), below.
//
//   node validate-objects.mjs RENDERED.yaml [--expect-capabilities BPF,PERFMON]
// Exit status 0 when every object passes; the problems are printed otherwise.
import { readFileSync, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");

const args = process.argv.slice(2);
const file = args[0];
const expectCaps = args.includes("--expect-capabilities") ? args[args.indexOf("--expect-capabilities") + 1] : null;
const problems = [];
const problem = (obj, msg) => problems.push(`${obj ? `${obj.kind}/${obj.metadata?.name}: ` : ""}${msg}`);

// ---- documents ------------------------------------------------------------------------------------
const docs = [];
for (const d of parseAllDocuments(readFileSync(file, "utf8"), { uniqueKeys: true })) {
  if (d.errors.length) {
    problem(null, `YAML: ${d.errors.map((e) => e.message).join("; ")}`);
    continue;
  }
  const v = d.toJS();
  if (v !== null && v !== undefined) docs.push(v);
}
if (docs.length === 0) problem(null, "no objects rendered");

// ---- 1. schemas ------------------------------------------------------------------------------------
function modelPath(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["", apiVersion];
  if (group === "monitoring.coreos.com") return `@kubernetes-models/prometheus-operator/${group}/${version}/${kind}`;
  return group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
}

// ---- 2. unknown fields, from the models' .d.ts class declarations -----------------------------------
const declCache = new Map();
function declaration(dts) {
  if (declCache.has(dts)) return declCache.get(dts);
  let decl = null;
  if (existsSync(dts)) {
    const text = readFileSync(dts, "utf8");
    const imports = new Map();
    for (const m of text.matchAll(/^import \{ ([^}]+) \} from "([^"]+)";$/gm)) {
      for (const name of m[1].split(",").map((s) => s.trim())) imports.set(name, m[2]);
    }
    // The class lists every property, inherited ones included; type aliases (IntOrString, Duration)
    // have no class and are leaves.
    const cls = text.match(/^export declare class \w+[^\n]*\{\n([\s\S]*?)\n\}/m);
    if (cls) {
      const props = new Map();
      const lines = cls[1].split("\n");
      for (let i = 0; i < lines.length; i++) {
        const m = lines[i].match(/^ {4}"([^"]+)"\??: (.*)$/);
        if (!m) continue;
        let type = m[2];
        if (type.trim() === "{") {
          // An inline object type: a map when it is `{ [key: string]: T }`, else skipped (leaf).
          const inner = [];
          for (i++; i < lines.length && !/^ {4}\};?$/.test(lines[i]); i++) inner.push(lines[i].trim());
          type = inner.length === 1 && inner[0].startsWith("[key: string]") ? "map" : "leaf";
        }
        props.set(m[1], type.replace(/;$/, "").trim());
      }
      decl = { props, imports, dir: dirname(dts) };
    }
  }
  declCache.set(dts, decl);
  return decl;
}

function resolveType(decl, typeName) {
  const from = decl.imports.get(typeName);
  if (!from) return null;
  const base = from.startsWith(".") ? resolve(decl.dir, from) : join(modules, from);
  return declaration(base.replace(/\.js$/, "") + ".d.ts");
}

function checkFields(obj, decl, path, kindObj) {
  if (obj === null || typeof obj !== "object" || Array.isArray(obj) || !decl) return;
  for (const [key, value] of Object.entries(obj)) {
    const type = decl.props.get(key);
    if (type === undefined) {
      problem(kindObj, `unknown field ${path}.${key}`);
      continue;
    }
    const arr = type.match(/^Array<(\w+)>$/);
    if (arr) {
      const d = resolveType(decl, arr[1]);
      if (d && Array.isArray(value)) value.forEach((v, i) => checkFields(v, d, `${path}.${key}[${i}]`, kindObj));
      continue;
    }
    if (/^\w+$/.test(type)) {
      const d = resolveType(decl, type);
      if (d) checkFields(value, d, `${path}.${key}`, kindObj);
    }
  }
}

for (const obj of docs) {
  if (!obj.apiVersion || !obj.kind) {
    problem(obj, "no apiVersion/kind");
    continue;
  }
  const mp = modelPath(obj.apiVersion, obj.kind);
  let Model;
  try {
    Model = (await import(mp))[obj.kind];
  } catch {
    problem(obj, `no schema for ${obj.apiVersion} ${obj.kind}`);
    continue;
  }
  try {
    new Model(obj).validate();
  } catch (e) {
    problem(obj, `schema: ${e.message}`);
  }
  checkFields(obj, declaration(join(modules, mp) + ".d.ts"), "", obj);
}

// ---- 3. podsight's rules ---------------------------------------------------------------------------
const seen = new Set();
for (const o of docs) {
  const id = `${o.kind}/${o.metadata?.namespace ?? ""}/${o.metadata?.name}`;
  if (seen.has(id)) problem(o, "rendered twice");
  seen.add(id);
  if (!o.metadata?.labels?.["app.kubernetes.io/name"] && o.kind !== "Namespace") problem(o, "no app.kubernetes.io/name label");
}
const of = (kind) => docs.filter((o) => o.kind === kind);

// The agent's config.json, where one is rendered: the rules below check the pod spec against it.
const agentConfigs = of("ConfigMap")
  .filter((c) => c.data?.["config.json"] !== undefined)
  .map((c) => {
    try {
      return JSON.parse(c.data["config.json"]);
    } catch {
      return null; // reported below
    }
  });
const agentConfig = agentConfigs.length === 1 ? agentConfigs[0] : null;
const tcpConfig = agentConfig?.programs?.tcp ?? {};
const tcpEnabled = tcpConfig.enabled !== false;

const daemonsets = of("DaemonSet");
// Monitoring-only renders have no DaemonSet; a full render has exactly one.
if (daemonsets.length > 1 || (expectCaps !== null && daemonsets.length !== 1)) {
  problem(null, `expected 1 DaemonSet, got ${daemonsets.length}`);
}
for (const ds of daemonsets) {
  const pod = ds.spec.template.spec;
  const sel = ds.spec.selector.matchLabels;
  for (const [k, v] of Object.entries(sel)) {
    if (ds.spec.template.metadata.labels?.[k] !== v) problem(ds, `pod template lacks selector label ${k}`);
  }
  if (pod.hostNetwork !== true) problem(ds, "hostNetwork must be true (XDP on node interfaces)");
  if (pod.hostIPC) problem(ds, "hostIPC must stay off");
  // hostPID only for the tcp family's iter_tcp walk of pods' network namespaces, and with the two
  // capabilities that walk needs (ptrace access to /proc/<pid>/ns/net, setns).
  if (pod.hostPID) {
    const add = pod.containers[0]?.securityContext?.capabilities?.add ?? [];
    if (!tcpEnabled || tcpConfig.open_connections === "sk_storage") problem(ds, "hostPID without tcp open_connections iter_tcp or auto");
    if (!add.includes("SYS_ADMIN") || !add.includes("SYS_PTRACE")) problem(ds, "hostPID without CAP_SYS_ADMIN and CAP_SYS_PTRACE is of no use");
  }
  const httpsProbes = Boolean(agentConfig?.http?.tls?.cert_file);
  if (pod.priorityClassName !== "system-node-critical") problem(ds, `priorityClassName is ${pod.priorityClassName}`);
  if (ds.spec.updateStrategy?.type !== "RollingUpdate") problem(ds, "updateStrategy must be RollingUpdate");
  if (ds.spec.updateStrategy?.rollingUpdate?.maxSurge && ds.spec.updateStrategy.rollingUpdate.maxSurge !== 0) {
    problem(ds, "maxSurge must be 0: two agents cannot share the node's port");
  }
  if (pod.containers.length !== 1) problem(ds, "expected one container");
  for (const c of pod.containers) {
    const sc = c.securityContext ?? {};
    if (sc.privileged) problem(ds, "container must not be privileged");
    if (sc.allowPrivilegeEscalation !== false) problem(ds, "allowPrivilegeEscalation must be false");
    if (sc.readOnlyRootFilesystem !== true) problem(ds, "readOnlyRootFilesystem must be true");
    if (!(sc.capabilities?.drop ?? []).includes("ALL")) problem(ds, "capabilities.drop must include ALL");
    const add = sc.capabilities?.add ?? [];
    const allowed = ["BPF", "PERFMON", "NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"];
    for (const cap of add) if (!allowed.includes(cap)) problem(ds, `capability ${cap} is not one podsight needs (docs/security.md)`);
    if (expectCaps !== null && [...add].sort().join(",") !== expectCaps.split(",").filter(Boolean).sort().join(",")) {
      problem(ds, `capabilities are ${add.join(",")}, expected ${expectCaps}`);
    }
    const port = c.ports?.find((p) => p.name === "metrics");
    if (!port) problem(ds, "no container port named metrics");
    if (c.startupProbe?.httpGet?.path !== "/healthz") problem(ds, "startup probe must be GET /healthz");
    if (c.livenessProbe?.httpGet?.path !== "/healthz") problem(ds, "liveness probe must be GET /healthz");
    if (c.readinessProbe?.httpGet?.path !== "/readyz") problem(ds, "readiness probe must be GET /readyz");
    for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) {
      const scheme = c[probe]?.httpGet?.scheme ?? "HTTP";
      if (agentConfig && scheme !== (httpsProbes ? "HTTPS" : "HTTP")) problem(ds, `${probe} scheme ${scheme}, but the agent serves ${httpsProbes ? "TLS" : "plain HTTP"}`);
    }
    // Every file the agent's config names for TLS and auth is a key of a Secret volume mounted
    // read-only at that place.
    const secretFiles = new Set();
    for (const m of c.volumeMounts ?? []) {
      const v = (pod.volumes ?? []).find((x) => x.name === m.name);
      if (!v?.secret) continue;
      if (m.readOnly !== true) problem(ds, `secret volume ${m.name} must be mounted read-only`);
      if (m.subPath) problem(ds, `secret volume ${m.name} mounted with subPath: rotated files would never arrive`);
      for (const item of v.secret.items ?? []) secretFiles.add(`${m.mountPath}/${item.path}`);
    }
    const h = agentConfig?.http ?? {};
    for (const f of [h.tls?.cert_file, h.tls?.key_file, h.auth?.bearer_token_file, h.auth?.basic_password_file]) {
      if (f && !secretFiles.has(f)) problem(ds, `config names ${f}, which no mounted Secret provides`);
    }
    if (!c.resources?.requests?.cpu || !c.resources?.requests?.memory) problem(ds, "resource requests missing");
    if (!c.resources?.limits?.memory) problem(ds, "memory limit missing (BPF maps are charged to the pod)");
    const nodeName = c.env?.find((e) => e.name === "NODE_NAME");
    if (nodeName?.valueFrom?.fieldRef?.fieldPath !== "spec.nodeName") problem(ds, "NODE_NAME must come from spec.nodeName");
    const mounts = new Map((c.volumeMounts ?? []).map((m) => [m.name, m]));
    for (const v of pod.volumes ?? []) {
      const m = mounts.get(v.name);
      if (!m) problem(ds, `volume ${v.name} is not mounted`);
      if (v.hostPath && m && m.readOnly !== true) problem(ds, `host path ${v.hostPath.path} must be mounted read-only`);
    }
    if (!(pod.volumes ?? []).some((v) => v.name === "cgroup2" && v.hostPath)) problem(ds, "no cgroup2 host mount");
    const args = c.args ?? [];
    const cfgPath = args[args.indexOf("--config") + 1];
    if (!cfgPath) problem(ds, "agent started without --config");
  }
}

for (const cm of of("ConfigMap").filter((c) => c.data?.["config.json"] !== undefined)) {
  let cfg;
  try {
    cfg = JSON.parse(cm.data["config.json"]);
  } catch (e) {
    problem(cm, `config.json is not JSON: ${e.message}`);
    continue;
  }
  const ds = daemonsets[0];
  const c = ds?.spec.template.spec.containers[0];
  const port = c?.ports?.find((p) => p.name === "metrics")?.containerPort;
  if (ds && !String(cfg.http?.listen ?? "").endsWith(`:${port}`)) problem(cm, `http.listen ${cfg.http?.listen} does not serve container port ${port}`);
  const cg = c?.volumeMounts?.find((m) => m.name === "cgroup2")?.mountPath;
  if (ds && cfg.cgroup_root !== cg) problem(cm, `cgroup_root ${cfg.cgroup_root} is not the cgroup2 mount ${cg}`);
  const caps = c?.securityContext?.capabilities?.add ?? [];
  const hostPID = ds?.spec.template.spec.hostPID === true;
  if ((cfg.bpf_stats || hostPID) !== caps.includes("SYS_ADMIN")) problem(cm, "CAP_SYS_ADMIN must be granted exactly for bpf_stats or hostPID");
  if (hostPID !== caps.includes("SYS_PTRACE")) problem(cm, "CAP_SYS_PTRACE must be granted exactly with hostPID");
}

// Not-ready agents still serve metrics (and the failure that made them not ready): keep them in DNS
// and the endpoints that monitoring and `helm test` use.
for (const svc of of("Service")) {
  if (svc.spec.publishNotReadyAddresses !== true) problem(svc, "publishNotReadyAddresses must be true");
}

// Pods get/list/watch; services too exactly when the tcp family's remote labels watch the cluster.
const remoteLabels = tcpEnabled && tcpConfig.remote?.enabled === true;
const wantResources = remoteLabels ? "pods,services" : "pods";
for (const cr of of("ClusterRole")) {
  const granted = [];
  for (const r of cr.rules ?? []) {
    const ok = r.apiGroups?.join() === "" && [...r.verbs].sort().join() === "get,list,watch";
    if (!ok) problem(cr, `rule ${JSON.stringify(r)} is more than get/list/watch in the core group`);
    granted.push(...(r.resources ?? []));
  }
  if (agentConfig && [...granted].sort().join() !== wantResources) {
    problem(cr, `grants get/list/watch on ${granted.join(",")}, the config needs exactly ${wantResources}`);
  }
}

for (const m of [...of("ServiceMonitor"), ...of("PodMonitor")]) {
  const eps = m.spec.endpoints ?? m.spec.podMetricsEndpoints ?? [];
  for (const ep of eps) {
    if (ep.port !== "metrics") problem(m, "endpoint must use port metrics");
    const job = (ep.relabelings ?? []).find((r) => r.targetLabel === "job");
    if (job?.replacement !== "podsight") problem(m, 'must set job="podsight" (alerts and dashboards select it)');
    if (agentConfig) {
      const tls = Boolean(agentConfig.http?.tls?.cert_file);
      if ((ep.scheme ?? "http") !== (tls ? "https" : "http")) problem(m, `scheme ${ep.scheme}, but the agent serves ${tls ? "TLS" : "plain HTTP"}`);
      const auth = agentConfig.http?.auth ?? {};
      const creds = ep.authorization ? "bearer" : ep.basicAuth ? "basic" : "none";
      const want = auth.bearer_token_file ? "bearer" : auth.basic_username ? "basic" : "none";
      if (creds !== want) problem(m, `presents ${creds} credentials, the agent asks for ${want}`);
    }
  }
}
if (of("ServiceMonitor").length && of("PodMonitor").length) problem(null, "ServiceMonitor and PodMonitor both rendered");

for (const r of of("PrometheusRule")) {
  const alerts = r.spec.groups.flatMap((g) => g.rules).filter((x) => x.alert);
  if (!alerts.length) problem(r, "no alerts");
  for (const a of alerts) if (!a.labels?.severity) problem(r, `alert ${a.alert} has no severity`);
}

for (const cm of of("ConfigMap").filter((c) => Object.keys(c.data ?? {}).some((k) => k.endsWith(".json") && k !== "config.json"))) {
  for (const [k, v] of Object.entries(cm.data)) {
    try {
      const d = JSON.parse(v);
      if (!d.uid || !d.title || !Array.isArray(d.panels)) problem(cm, `${k} is not a Grafana dashboard`);
    } catch (e) {
      problem(cm, `${k}: ${e.message}`);
    }
  }
}

for (const p of problems) console.log(`  ${p}`);
console.log(`${file}: ${docs.length} objects, ${problems.length} problems`);
process.exit(problems.length ? 1 : 0);
