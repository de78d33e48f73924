import { type Config, ConfigSchema, SETTING_NAMES } from './schema.js';

/** Default value of a setting as text ('' when it has none). */
export function defaultOf(name: keyof Config): string {
  const field = ConfigSchema.shape[name];
  const parsed = field.safeParse(undefined);
  if (!parsed.success || parsed.data === undefined) return '';
  return String(parsed.data);
}

const doc = (name: keyof Config) => ConfigSchema.shape[name].description ?? '';

/** `.env.example`: every setting with its comment; defaults shown, commented out so they stay defaults. */
export function renderEnvExample(): string {
  const lines = [
    '# sandbot settings. Every variable is optional; the value shown is the default.',
    '# Generated from src/contracts/config/schema.ts by `npm run docs:config`; a test keeps it in sync.',
    '',
  ];
  for (const name of SETTING_NAMES) {
    lines.push(`# ${doc(name)}`, `# ${name}=${defaultOf(name)}`, '');
  }
  return lines.join('\n');
}

export const TABLE_START = '<!-- config-table:start -->';
export const TABLE_END = '<!-- config-table:end -->';

/** The README's config table (between the markers). */
export function renderConfigTable(): string {
  const rows = SETTING_NAMES.map((name) => {
    const value = defaultOf(name);
    return `| \`${name}\` | ${value === '' ? '—' : `\`${value}\``} | ${doc(name).replaceAll('|', '\\|')} |`;
  });
  return [TABLE_START, '| Setting | Default | Meaning |', '|---|---|---|', ...rows, TABLE_END].join('\n');
}

/** Replaces the table between the markers in a README text. */
export function withConfigTable(readme: string): string {
  const start = readme.indexOf(TABLE_START);
  const end = readme.indexOf(TABLE_END);
  if (start === -1 || end === -1) throw new Error(`README has no ${TABLE_START} … ${TABLE_END} section`);
  return readme.slice(0, start) + renderConfigTable() + readme.slice(end + TABLE_END.length);
}
