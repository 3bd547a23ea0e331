// cargo's runner for wasm32-wasip1 test binaries: runs one in Node's WASI (preview1), in V8 as
// Envoy runs the filter, with the arguments cargo passes and the current folder as its root.
// `make wasm-unit` uses it for the filter logic's tests; it needs nothing but Node.
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import process from "node:process";

const [, , wasmPath, ...args] = process.argv;
if (!wasmPath) {
  console.error("usage: node scripts/wasi-run.mjs FILE.wasm [ARGS…]");
  process.exit(2);
}
const wasi = new WASI({
  version: "preview1",
  args: [wasmPath, ...args],
  env: process.env,
  preopens: { ".": process.cwd() },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(wasmPath));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
// A failed assertion aborts the module (wasm has no unwinding): V8 throws, and Node exits 1.
process.exit(wasi.start(instance));
