import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';

// The folders are the architecture (README, Architecture): these tests keep the imports one-way.

/** Each folder of the code and the folders it may import from (besides itself). */
const ALLOWED: Record<string, string[]> = {
  contracts: [],
  shared: ['contracts'],
  gateway: ['contracts', 'shared'],
  adapters: ['gateway', 'shared', 'contracts'],
  worker: ['sandbox-host', 'shared', 'contracts'],
  'sandbox-host': ['contracts'],
  runtime: ['contracts'],
  cli: ['adapters', 'gateway', 'worker', 'sandbox-host', 'shared', 'contracts'],
};

function areaOf(file: string): string {
  if (file.startsWith('src/contracts/')) return 'contracts';
  if (file.startsWith('src/shared/')) return 'shared';
  if (file.startsWith('src/gateway/')) return 'gateway';
  if (file.startsWith('src/worker/')) return 'worker';
  if (file.startsWith('src/cli/')) return 'cli';
  if (file.startsWith('adapters/')) return 'adapters';
  if (file.startsWith('sandbox/runtime/')) return 'runtime';
  if (file.startsWith('sandbox/host/')) return 'sandbox-host';
  return `unplaced: ${file}`;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => join(entry.parentPath, entry.name));
}

/** Relative import targets (static, type-only, re-exports and dynamic), as repository paths of .ts files. */
function relativeImports(file: string, source: string): string[] {
  const found: string[] = [];
  for (const match of source.matchAll(/from\s+['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g)) {
    const specifier = match[1] ?? match[2] ?? '';
    found.push(normalize(join(dirname(file), specifier)).replace(/\.js$/, '.ts'));
  }
  return found;
}

const FILES = ['src', 'adapters', 'sandbox'].flatMap(sourceFiles);
const GRAPH = new Map(FILES.map((file) => [file, relativeImports(file, readFileSync(file, 'utf8'))]));

describe('layout', () => {
  it('places every source file in a known folder', () => {
    expect(FILES.map(areaOf).filter((area) => area.startsWith('unplaced'))).toEqual([]);
  });

  it('imports run one way: adapters → gateway → shared → contracts; worker → sandbox host; runtime → contracts', () => {
    const wrong: string[] = [];
    for (const [file, targets] of GRAPH) {
      const from = areaOf(file);
      for (const target of targets) {
        const to = areaOf(target);
        if (to !== from && !ALLOWED[from]?.includes(to)) wrong.push(`${file} → ${target}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('has no import cycles', () => {
    const cycles: string[][] = [];
    const state = new Map<string, 'open' | 'done'>();
    const path: string[] = [];
    const visit = (file: string) => {
      state.set(file, 'open');
      path.push(file);
      for (const next of GRAPH.get(file) ?? []) {
        if (!GRAPH.has(next)) continue;
        if (state.get(next) === 'open') cycles.push(path.slice(path.indexOf(next)));
        else if (!state.has(next)) visit(next);
      }
      path.pop();
      state.set(file, 'done');
    };
    for (const file of GRAPH.keys()) if (!state.has(file)) visit(file);
    expect(cycles).toEqual([]);
  });

  it('bench/ and testkit/ do not import test/', () => {
    const wrong = ['bench', 'testkit'].flatMap(sourceFiles).flatMap((file) =>
      relativeImports(file, readFileSync(file, 'utf8'))
        .filter((target) => target.startsWith('test/'))
        .map((target) => `${file} → ${target}`),
    );
    expect(wrong).toEqual([]);
  });
});
