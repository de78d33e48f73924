import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  renderConfigTable,
  renderEnvExample,
  TABLE_END,
  TABLE_START,
} from '../../src/contracts/config/docs.js';
import { SETTING_NAMES } from '../../src/contracts/config/schema.js';

describe('config documentation', () => {
  it('.env.example lists exactly the settings of the schema (run `npm run docs:config` to refresh)', () => {
    const example = readFileSync('.env.example', 'utf8');
    expect(example).toBe(renderEnvExample());
    const names = [...example.matchAll(/^# ([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]);
    expect(names).toEqual(SETTING_NAMES);
  });

  it("the README's config table matches the schema", () => {
    const readme = readFileSync('README.md', 'utf8');
    const table = readme.slice(readme.indexOf(TABLE_START), readme.indexOf(TABLE_END) + TABLE_END.length);
    expect(table).toBe(renderConfigTable());
    for (const name of SETTING_NAMES) expect(table).toContain(`| \`${name}\` |`);
  });
});
