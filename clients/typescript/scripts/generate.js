#!/usr/bin/env node
// Generates the TypeScript stubs from ../../protos with buf + ts-proto (see buf.gen.yaml).
//
//   node scripts/generate.js src/gen          write the stubs (npm run generate)
//   node scripts/generate.js --check src/gen  fail when the committed stubs are stale
//
// Two inputs: ../../protos (switchboard/v1) and proto/ (googleapis' google/rpc status and
// error_details, vendored, for decoding grpc-status-details-bin). ts-proto emits every file in
// the import graph, including google/protobuf/descriptor.proto (imported by field_behavior.proto
// only for its option extension). Files that neither a switchboard/v1 stub nor a google/rpc one
// imports are dropped, so src/gen holds only what the client loads.
"use strict";

const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const pkg = path.resolve(__dirname, "..");
const repo = path.resolve(pkg, "..", "..");
const buf = path.join(pkg, "node_modules", ".bin", "buf");

function walk(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? walk(full) : [full];
  });
}

function reachable(root) {
  const seen = new Set();
  const queue = [...walk(path.join(root, "switchboard")), ...walk(path.join(root, "google", "rpc"))];
  while (queue.length > 0) {
    const file = queue.pop();
    if (seen.has(file)) continue;
    seen.add(file);
    const source = fs.readFileSync(file, "utf8");
    for (const match of source.matchAll(/^import .* from "(\.{1,2}\/[^"]+)";$/gm)) {
      queue.push(path.resolve(path.dirname(file), `${match[1]}.ts`));
    }
  }
  return seen;
}

function generate(out) {
  for (const input of [repo, path.join(pkg, "proto")]) {
    execFileSync(buf, ["generate", input, "--template", path.join(pkg, "buf.gen.yaml"), "-o", out],
      { cwd: pkg, stdio: "inherit" });
  }
  const keep = reachable(out);
  for (const file of walk(out)) {
    if (!keep.has(file)) fs.rmSync(file);
  }
  removeEmptyDirs(out);
}

function removeEmptyDirs(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) removeEmptyDirs(path.join(dir, entry.name));
  }
  if (fs.readdirSync(dir).length === 0) fs.rmdirSync(dir);
}

function listing(root) {
  return walk(root).map((f) => path.relative(root, f)).sort();
}

function main(argv) {
  const check = argv.includes("--check");
  const target = path.resolve(pkg, argv.filter((a) => a !== "--check")[0] ?? "src/gen");
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "switchboard-ts-gen-"));
  try {
    generate(scratch);
    if (!check) {
      fs.rmSync(target, { recursive: true, force: true });
      fs.cpSync(scratch, target, { recursive: true });
      return 0;
    }
    const want = listing(scratch);
    const have = fs.existsSync(target) ? listing(target) : [];
    const stale = want.filter((f) => !have.includes(f) ||
      fs.readFileSync(path.join(scratch, f), "utf8") !== fs.readFileSync(path.join(target, f), "utf8"));
    const extra = have.filter((f) => !want.includes(f));
    if (stale.length > 0 || extra.length > 0) {
      console.error(`${path.relative(repo, target)} is stale (${[...stale, ...extra].join(", ")}):` +
        " run 'make generate-clients' and commit the result");
      return 1;
    }
    return 0;
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

process.exitCode = main(process.argv.slice(2));
