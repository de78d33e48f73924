import { z } from 'zod';

/** A skill's name and version, as manifests, settings (SANDBOT_SKILLS) and chat commands write them. */

export const SkillName = z
  .string()
  .regex(
    /^[a-z][a-z0-9-]{1,39}$/,
    'a skill name is 2–40 lower-case letters, digits or "-", starting with a letter',
  );
export const SkillVersion = z
  .string({ error: 'version must be a string such as "1.0.0" (quote it in SKILL.md)' })
  .regex(/^\d{1,6}\.\d{1,6}\.\d{1,6}(-[0-9A-Za-z.-]{1,40})?$/, 'version is MAJOR.MINOR.PATCH, e.g. "1.0.0"');

/** "name@version" */
export const skillRef = (m: { name: string; version: string }) => `${m.name}@${m.version}`;

/** Reads "name@version" (version required) or "name" (version optional). */
export function parseSkillRef(text: string): { name: string; version?: string } | undefined {
  const [name = '', version, extra] = text.trim().split('@');
  if (extra !== undefined || !SkillName.safeParse(name).success) return undefined;
  if (version === undefined) return { name };
  return SkillVersion.safeParse(version).success ? { name, version } : undefined;
}
