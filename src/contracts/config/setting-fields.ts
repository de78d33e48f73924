import { z } from 'zod';

// The kinds of value settings take, shared by the schema's parts (schema.ts and the *-settings.ts files).

export const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
/** A comma-separated list; empty or unset means "no restriction" where the setting says so. */
export const list = z
  .string()
  .optional()
  .transform((v) =>
    (v ?? '')
      .split(',')
      .map((item) => item.trim())
      .filter(Boolean),
  );
/** "true" or "false" (unset: false). */
export const flag = z
  .enum(['true', 'false'])
  .default('false')
  .transform((v) => v === 'true');
export const optionalSecret = z
  .string()
  .optional()
  .transform((v) => (v === '' ? undefined : v));
