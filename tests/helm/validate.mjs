// Validates Kubernetes manifests against the schemas of their kinds, offline,
// with what kubernetes-models 5.1.0 generates from the Kubernetes OpenAPI
// schema, and @kubernetes-models/keda 2.0.0 and prometheus-operator 6.0.0 from
// those projects' CRDs (pinned in tests/helm/schema/package-lock.json,
// installed by scripts/install-k8s-tools), in two passes:
//   1. the generated JSON-schema validators: types, required fields, enums,
//      formats;
//   2. the generated TypeScript types, by the TypeScript compiler: each
//      manifest as an object literal of its kind's type, so a field the
//      schema does not know (a typo, a field at the wrong level) is an error,
//      which the OpenAPI schema alone (no additionalProperties) lets through.
//
//   DAVIT_K8S_MODULES=~/.cache/davit-helm/node/node_modules node validate.mjs < docs.json
//
// Reads a JSON array of manifests; prints one line per problem ("invalid #INDEX
// KIND/NAME: what") and a last
// line "N manifests valid" or "N manifests invalid", and exits 1 when any is
// invalid or of a kind with no schema here.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { readFileSync } from "node:fs";
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const modules = process.env.DAVIT_K8S_MODULES;
if (!modules) {
  console.error("validate.mjs: DAVIT_K8S_MODULES (the validators' node_modules) is not set");
  process.exit(2);
}
// The package that holds each API group's models.
const packages = {
  "": "kubernetes-models",
  "keda.sh": "@kubernetes-models/keda",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

const docs = JSON.parse(readFileSync(0, "utf8"));
const bad = new Set();
const typed = [];
for (const [i, doc] of docs.entries()) {
  const what = `#${i} ${doc.kind}/${doc.metadata && doc.metadata.name}`;
  const [group, version] = doc.apiVersion.includes("/") ? doc.apiVersion.split("/") : ["", doc.apiVersion];
  const builtin = group === "" || /^[a-z]+$/.test(group) || group.endsWith(".k8s.io");
  const pkg = packages[group] ?? (builtin ? "kubernetes-models" : null);
  const spec = pkg && `${pkg}/${group ? `${group}/${version}` : version}/${doc.kind}`;
  let Model;
  try {
    Model = (await import(pathToFileURL(path.join(modules, `${spec}.js`))))[doc.kind];
  } catch (e) {
    Model = undefined;
  }
  if (!Model) {
    console.log(`invalid ${what}: no schema for ${doc.apiVersion} ${doc.kind} here`);
    bad.add(i);
    continue;
  }
  try {
    new Model(doc).validate();
  } catch (e) {
    console.log(`invalid ${what}: ${e.message}`);
    bad.add(i);
  }
  typed.push([i, what, spec, doc]);
}

// Pass 2: one TypeScript file, one constant per manifest, compiled with no output.
const ts = (await import(pathToFileURL(path.join(modules, "typescript/lib/typescript.js")))).default;
const dir = mkdtempSync(path.join(tmpdir(), "davit-k8s-validate-"));
try {
  symlinkSync(modules, path.join(dir, "node_modules"), "dir");
  const lines = typed.map(([i, , spec]) => `import type { I${docs[i].kind} as T${i} } from "${spec}";`);
  for (const [i, , , doc] of typed) {
    lines.push(`export const m${i}: T${i} = ${JSON.stringify(doc)};`);
  }
  const file = path.join(dir, "manifests.ts");
  writeFileSync(file, lines.join("\n") + "\n");
  const program = ts.createProgram([file], {
    strict: true, noEmit: true, skipLibCheck: true, types: [],
    module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
  });
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const msg = ts.flattenDiagnosticMessageText(d.messageText, " ");
    let which = "the manifests";
    if (d.file && d.file.fileName === file) {
      const line = d.file.getLineAndCharacterOfPosition(d.start).line;
      const entry = typed[line - typed.length];
      if (entry) {
        which = entry[1];
        bad.add(entry[0]);
      }
    }
    if (which === "the manifests") bad.add(-1);
    console.log(`invalid ${which}: ${msg}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
const n = docs.length;
console.log(bad.size ? `${bad.size} of ${n} manifests invalid` : `${n} manifests valid`);
process.exit(bad.size ? 1 : 0);
