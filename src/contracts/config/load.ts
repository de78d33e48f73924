import { existsSync } from 'node:fs';
import { modelSettingsProblem } from './model-settings.js';
import { type Config, ConfigSchema, SETTING_NAMES } from './schema.js';

export class ConfigError extends Error {}

/** Parses settings from an environment; the first problem becomes one line naming the variable. */
export function parseConfig(env: Record<string, string | undefined>): Config {
  const input: Record<string, string | undefined> = {};
  for (const name of SETTING_NAMES) {
    const value = env[name];
    // An empty value means "not set", as in most .env conventions.
    if (value !== undefined && value !== '') input[name] = value;
  }
  const parsed = ConfigSchema.safeParse(input);
  if (parsed.success) {
    // Settings that depend on each other are checked after each has been read on its own.
    const problem = modelSettingsProblem(parsed.data);
    if (problem) throw new ConfigError(problem);
    return parsed.data;
  }
  const issue = parsed.error.issues[0];
  const name = String(issue?.path[0] ?? 'config');
  const got = input[name];
  throw new ConfigError(
    `config: ${name} ${got === undefined ? 'is missing' : `is "${got}"`}: ${describeExpectation(name, issue?.message)}`,
  );
}

function describeExpectation(name: string, message: string | undefined): string {
  const doc = ConfigSchema.shape[name as keyof Config]?.description;
  return `${message ?? 'invalid'}${doc ? ` (${doc})` : ''}`;
}

/** Loads `.env` (when present; the environment wins) and parses. */
export function loadConfig(envFile = '.env'): Config {
  if (existsSync(envFile)) {
    const before = { ...process.env };
    process.loadEnvFile(envFile);
    // loadEnvFile overwrites; restore what the real environment already had.
    for (const [k, v] of Object.entries(before)) process.env[k] = v;
  }
  return parseConfig(process.env);
}
