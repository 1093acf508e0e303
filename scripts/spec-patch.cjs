// Writes a provider's published OpenAPI description with the project's
// corrections applied, for the Prism mock of the provider tests:
//   node scripts/spec-patch.cjs SPEC OUT [PATCH...]
// SPEC is YAML or JSON (read from ../shared/specs/, never copied into the
// project); each PATCH is a YAML file in connectors/spec-patches/ holding a
// list of RFC 6902 operations (`add`, `replace`, `remove`), each with a
// comment citing the provider's guide that shows the published file wrong.
// OUT is JSON. js-yaml comes from target/prism (scripts/prism installs it).
"use strict";
const fs = require("fs");
const path = require("path");
const yaml = require(path.resolve(process.env.PRISM_DIR || "target/prism", "node_modules", "js-yaml"));

const [spec, out, ...patches] = process.argv.slice(2);
if (!spec || !out) {
  console.error("usage: node scripts/spec-patch.cjs SPEC OUT [PATCH...]");
  process.exit(2);
}
const doc = yaml.load(fs.readFileSync(spec, "utf8"));

// RFC 6901: "/paths/~1contacts/get" → ["paths", "/contacts", "get"].
function tokens(pointer) {
  if (pointer === "") return [];
  if (!pointer.startsWith("/")) throw new Error(`bad JSON pointer ${JSON.stringify(pointer)}`);
  return pointer.slice(1).split("/").map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function apply(root, op, where) {
  const keys = tokens(op.path);
  const last = keys.pop();
  let parent = root;
  for (const k of keys) {
    if (parent === null || typeof parent !== "object" || !(k in parent)) {
      throw new Error(`${where}: ${op.op} ${op.path}: no ${JSON.stringify(k)} in the description`);
    }
    parent = parent[k];
  }
  const exists = Array.isArray(parent) ? last === "-" || Number(last) < parent.length : last in parent;
  switch (op.op) {
    case "add":
      if (Array.isArray(parent)) parent.splice(last === "-" ? parent.length : Number(last), 0, op.value);
      else parent[last] = op.value;
      break;
    case "replace":
      if (!exists) throw new Error(`${where}: replace ${op.path}: nothing there`);
      parent[last] = op.value;
      break;
    case "remove":
      if (!exists) throw new Error(`${where}: remove ${op.path}: nothing there`);
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else delete parent[last];
      break;
    default:
      throw new Error(`${where}: unsupported op ${JSON.stringify(op.op)}`);
  }
}

for (const file of patches) {
  const ops = yaml.load(fs.readFileSync(file, "utf8"));
  if (!Array.isArray(ops)) throw new Error(`${file}: expected a list of operations`);
  ops.forEach((op, i) => apply(doc, op, `${file} #${i + 1}`));
}
fs.writeFileSync(out, JSON.stringify(doc));
