#!/usr/bin/env node
// Bundles the Lab into dist/: app.js (esbuild, from src/main.ts), app.css and index.html from
// static/. No CDN, no external fonts: everything the page loads comes from this server.
import { build } from "esbuild";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dist = path.join(pkg, "dist");
fs.rmSync(dist, { recursive: true, force: true });
fs.mkdirSync(dist, { recursive: true });
await build({
  entryPoints: [path.join(pkg, "src", "main.ts")],
  outfile: path.join(dist, "app.js"),
  bundle: true, format: "esm", target: "es2022", minify: true, sourcemap: false,
  legalComments: "none", logLevel: "warning",
});
for (const name of ["index.html", "app.css"]) {
  fs.copyFileSync(path.join(pkg, "static", name), path.join(dist, name));
}
