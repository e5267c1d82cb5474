// Parses each HCL2 file named on the command line with @cdktf/hcl2json
// (Terraform's parser, compiled to WebAssembly) and prints one JSON object,
// file name -> its body as JSON. A file that does not parse: its error on
// stderr, exit 1. NODE_PATH names the node_modules that
// scripts/install-hcl2json filled.
"use strict";
const fs = require("fs");
const hcl = require("@cdktf/hcl2json");

(async () => {
    const out = {};
    let failed = false;
    for (const file of process.argv.slice(2)) {
        try {
            out[file] = await hcl.parse(file, fs.readFileSync(file, "utf8"));
        } catch (e) {
            console.error(`${file}: ${e.message || e}`);
            failed = true;
        }
    }
    if (failed) process.exit(1);
    process.stdout.write(JSON.stringify(out));
})();
