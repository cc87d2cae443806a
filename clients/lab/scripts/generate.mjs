#!/usr/bin/env node
// Generates the Lab's connect-es stubs from ../../protos with buf + protoc-gen-es (buf.gen.yaml);
// the generate-or-check loop is ../../scripts/stubs.cjs, shared with the TypeScript client.
//
//   node scripts/generate.mjs src/gen          write the stubs (make generate-clients)
//   node scripts/generate.mjs --check src/gen  fail when the committed stubs are stale
//
// switchboard/v1, the vendored google/api/field_behavior.proto it imports (the well-known types
// come from @bufbuild/protobuf/wkt) and google/rpc/error_details.proto, for the details of
// Connect errors. Not google/rpc/status.proto: a Connect error carries its details unwrapped.
import path from "node:path";
import { fileURLToPath } from "node:url";
import stubs from "../../scripts/stubs.cjs";

const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
process.exitCode = stubs.main(pkg, process.argv.slice(2),
  { excludePaths: ["protos/google/rpc/status.proto"] });
