#!/usr/bin/env node
// Registers an OCI runtime with the Docker engine: merges {"runtimes": {NAME: {path, runtimeArgs}}} into
// daemon.json, keeping every other setting. Prints "changed" when it wrote the file, "unchanged" when
// the entry was already there as asked (the caller then reloads the engine only when needed).
// Usage: node scripts/register-runtime.mjs NAME PATH [ARG …]   (DAEMON_JSON overrides /etc/docker/daemon.json;
// KEEP_EXISTING=1 leaves an existing entry of that name alone and prints "kept")
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

const [name, path, ...runtimeArgs] = process.argv.slice(2);
if (!name || !path) {
  console.error('usage: register-runtime.mjs NAME PATH [ARG …]');
  process.exit(2);
}
const file = process.env.DAEMON_JSON ?? '/etc/docker/daemon.json';
let config = {};
if (existsSync(file)) {
  const text = readFileSync(file, 'utf8');
  try {
    config = text.trim() === '' ? {} : JSON.parse(text);
  } catch (error) {
    console.error(`${file} is not valid JSON (${error.message}); fix it by hand, nothing was changed`);
    process.exit(1);
  }
}
const wanted = runtimeArgs.length > 0 ? { path, runtimeArgs } : { path };
const current = config.runtimes?.[name];
if (JSON.stringify(current) === JSON.stringify(wanted)) {
  console.log('unchanged');
  process.exit(0);
}
// KEEP_EXISTING=1: an operator's own entry under that name is left alone (and named), not replaced.
if (current && process.env.KEEP_EXISTING === '1') {
  console.error(
    `${file} already registers "${name}" as ${JSON.stringify(current)}; left as it is (sandbot asks for ${JSON.stringify(wanted)})`,
  );
  console.log('kept');
  process.exit(0);
}
config.runtimes = { ...(config.runtimes ?? {}), [name]: wanted };
mkdirSync(dirname(file), { recursive: true });
// Write then rename, so the engine never reads half a file.
writeFileSync(`${file}.tmp`, `${JSON.stringify(config, null, 2)}\n`);
renameSync(`${file}.tmp`, file);
console.log('changed');
