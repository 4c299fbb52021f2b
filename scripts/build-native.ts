/**
 * Rebuilds native/bmm.wasm from native/bmm.c (the committed binary is what runs; this is only
 * needed after editing the C source). Needs clang and lld with the wasm32 target, e.g. Debian's
 * `apt-get install clang-14 lld-14`.
 *   bun scripts/build-native.ts
 */
import { resolve } from "node:path";

const dir = resolve(import.meta.dir, "../native");
const clang = ["clang", "clang-14", "clang-15", "clang-16"].find((c) => Bun.which(c));
if (!clang) throw new Error("clang not found (Debian: apt-get install clang-14 lld-14)");
const args = [clang, "--target=wasm32", "-msimd128", "-O3", "-nostdlib", "-ffreestanding", "-fno-builtin", "-fuse-ld=lld", "-Wl,--no-entry", "-Wl,--import-memory", "-o", `${dir}/bmm.wasm`, `${dir}/bmm.c`];
const p = Bun.spawnSync(args, { stdout: "inherit", stderr: "inherit" });
if (p.exitCode !== 0) process.exit(p.exitCode ?? 1);
console.log(`built ${dir}/bmm.wasm with ${clang}`);
