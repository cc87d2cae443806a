#!/usr/bin/env node
// Generates the TypeScript stubs from ../../protos with buf + ts-proto (see buf.gen.yaml);
// the generate-or-check loop is ../../scripts/stubs.cjs, shared with the Lab.
//
//   node scripts/generate.js src/gen          write the stubs (npm run generate)
//   node scripts/generate.js --check src/gen  fail when the committed stubs are stale
//
// ../../protos holds switchboard/v1 and googleapis' vendored google/api and google/rpc (status
// and error_details, for decoding grpc-status-details-bin). ts-proto emits every file in the
// import graph, including google/protobuf/descriptor.proto (imported by field_behavior.proto
// only for its option extension). Files that neither a switchboard/v1 stub nor a google/rpc one
// imports are dropped, so src/gen holds only what the client loads.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { main, walk } = require("../../scripts/stubs.cjs");

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

function prune(out) {
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

process.exitCode = main(path.resolve(__dirname, ".."), process.argv.slice(2), { prune });
