// The generate-or-check loop of the TypeScript client (clients/typescript/scripts/generate.js)
// and the Lab (clients/lab/scripts/generate.mjs): `buf generate` of ../../protos with the
// package's own buf.gen.yaml and node_modules/.bin/buf into a scratch folder, then either
// replace the target with it or (--check) fail when the committed target differs from it.
//
//   main(pkg, argv, { excludePaths, prune })
//     argv          [--check] [TARGET]  (TARGET relative to pkg, default src/gen)
//     excludePaths  files to leave out (repo-relative, e.g. protos/google/rpc/status.proto)
//     prune(out)    called on the scratch folder before it is written or compared
//   returns the exit code.
"use strict";

const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const repo = path.resolve(__dirname, "..", "..");

function walk(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    return entry.isDirectory() ? walk(full) : [full];
  });
}

function listing(root) {
  return fs.existsSync(root) ? walk(root).map((f) => path.relative(root, f)).sort() : [];
}

function generate(pkg, out, excludePaths) {
  // Absolute, since buf reads --exclude-path relative to its working directory; and checked,
  // since buf ignores a path that names nothing (a renamed proto would come back unnoticed).
  const excludes = excludePaths.flatMap((p) => {
    const file = path.join(repo, p);
    if (!fs.existsSync(file)) throw new Error(`excluded ${p} does not exist`);
    return ["--exclude-path", file];
  });
  execFileSync(path.join(pkg, "node_modules", ".bin", "buf"),
    ["generate", repo, "--template", path.join(pkg, "buf.gen.yaml"), "-o", out, ...excludes],
    { cwd: pkg, stdio: "inherit" });
}

// The files of `want` (the fresh stubs) that `have` (the committed ones) lacks or holds
// differently, then those only `have` holds.
function differences(want, have) {
  const wanted = listing(want);
  const had = listing(have);
  const stale = wanted.filter((f) => !had.includes(f) ||
    fs.readFileSync(path.join(want, f), "utf8") !== fs.readFileSync(path.join(have, f), "utf8"));
  return [...stale, ...had.filter((f) => !wanted.includes(f))];
}

function main(pkg, argv, { excludePaths = [], prune = () => {} } = {}) {
  const check = argv.includes("--check");
  const target = path.resolve(pkg, argv.filter((a) => a !== "--check")[0] ?? "src/gen");
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), `switchboard-${path.basename(pkg)}-gen-`));
  try {
    generate(pkg, scratch, excludePaths);
    prune(scratch);
    if (!check) {
      fs.rmSync(target, { recursive: true, force: true });
      fs.cpSync(scratch, target, { recursive: true });
      return 0;
    }
    const changed = differences(scratch, target);
    if (changed.length > 0) {
      console.error(`${path.relative(repo, target)} is stale (${changed.join(", ")}):` +
        " run 'make generate-clients' and commit the result");
      return 1;
    }
    return 0;
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

module.exports = { main, walk };
