// Turns the agent container of a rendered chart into `podman run` arguments, so that the image test
// runs the agent exactly as the DaemonSet would: same capabilities, user, seccomp, read-only root,
// host network, host mounts, ConfigMap files, environment and arguments. A pod field this script
// does not know how to reproduce is an error, not something silently left out.
//
//   node podman-args.mjs RENDERED.yaml CONFIG_DIR NODE_NAME   → JSON array of arguments on stdout
// CONFIG_DIR receives the files of the ConfigMap volumes (mounted read-only from there).
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";

const [file, configDir, nodeName] = process.argv.slice(2);
const docs = parseAllDocuments(readFileSync(file, "utf8")).map((d) => d.toJS()).filter(Boolean);
const ds = docs.find((d) => d.kind === "DaemonSet");
const pod = ds.spec.template.spec;
const [c] = pod.containers;
const out = [];
const fail = (msg) => {
  console.error(`podman-args: ${msg}`);
  process.exit(1);
};

if (pod.hostNetwork) out.push("--network=host");
if (pod.hostPID || pod.hostIPC) fail("hostPID/hostIPC not reproduced");
const sc = c.securityContext ?? {};
if (sc.privileged) fail("privileged containers are not what we test");
out.push(`--user=${sc.runAsUser ?? 0}:${sc.runAsGroup ?? 0}`);
for (const cap of sc.capabilities?.drop ?? []) out.push(`--cap-drop=${cap}`);
for (const cap of sc.capabilities?.add ?? []) out.push(`--cap-add=${cap}`);
if (sc.allowPrivilegeEscalation === false) out.push("--security-opt=no-new-privileges");
if (sc.readOnlyRootFilesystem) out.push("--read-only", "--read-only-tmpfs=false");
const seccomp = sc.seccompProfile ?? pod.securityContext?.seccompProfile;
if (seccomp?.type === "Unconfined") out.push("--security-opt=seccomp=unconfined");
else if (seccomp && seccomp.type !== "RuntimeDefault") fail(`seccomp ${seccomp.type} not reproduced`);

const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
for (const m of c.volumeMounts ?? []) {
  const v = volumes.get(m.name);
  const ro = m.readOnly ? ":ro" : "";
  if (v?.hostPath) {
    out.push(`--volume=${v.hostPath.path}:${m.mountPath}${ro}`);
  } else if (v?.configMap) {
    const cm = docs.find((d) => d.kind === "ConfigMap" && d.metadata.name === v.configMap.name);
    if (!cm) fail(`ConfigMap ${v.configMap.name} not rendered`);
    const dir = join(configDir, m.name);
    mkdirSync(dir, { recursive: true });
    for (const [k, data] of Object.entries(cm.data)) writeFileSync(join(dir, k), data);
    out.push(`--volume=${dir}:${m.mountPath}${ro}`);
  } else {
    fail(`volume ${m.name} of a kind not reproduced`);
  }
}
for (const e of c.env ?? []) {
  if (e.value !== undefined) out.push(`--env=${e.name}=${e.value}`);
  else if (e.valueFrom?.fieldRef?.fieldPath === "spec.nodeName") out.push(`--env=${e.name}=${nodeName}`);
  else fail(`env ${e.name} not reproduced`);
}
const memory = c.resources?.limits?.memory;
if (memory) out.push(`--memory=${memory.replace(/i$/, "").toLowerCase()}`);
out.push(c.image);
if (c.command) fail("command override not reproduced");
out.push(...(c.args ?? []));
console.log(JSON.stringify(out));
