#!/usr/bin/env node
// Generates the Lab's connect-es stubs from ../../protos with buf + protoc-gen-es (buf.gen.yaml).
//
//   node scripts/generate.mjs src/gen          write the stubs (make generate-clients)
//   node scripts/generate.mjs --check src/gen  fail when the committed stubs are stale
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const repo = path.resolve(pkg, "..", "..");
const buf = path.join(pkg, "node_modules", ".bin", "buf");

function walk(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? walk(full) : [full];
  });
}

function listing(root) {
  return fs.existsSync(root) ? walk(root).map((f) => path.relative(root, f)).sort() : [];
}

function generate(out) {
  // switchboard/v1 and the vendored google/api/field_behavior.proto it imports (the well-known
  // types come from @bufbuild/protobuf/wkt); then proto/: google/rpc/error_details.proto.
  for (const input of [repo, path.join(pkg, "proto")]) {
    execFileSync(buf, ["generate", input, "--template", path.join(pkg, "buf.gen.yaml"),
      "-o", out], { cwd: pkg, stdio: "inherit" });
  }
}

function main(argv) {
  const check = argv.includes("--check");
  const target = path.resolve(pkg, argv.filter((a) => a !== "--check")[0] ?? "src/gen");
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "switchboard-lab-gen-"));
  try {
    generate(scratch);
    if (!check) {
      fs.rmSync(target, { recursive: true, force: true });
      fs.cpSync(scratch, target, { recursive: true });
      return 0;
    }
    const want = listing(scratch);
    const have = listing(target);
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
