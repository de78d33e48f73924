import { z } from 'zod';
import { Grant } from '../../contracts/policy/network-policy.js';
import { SkillName, SkillVersion } from '../../contracts/policy/skill-ref.js';
import { SkillToolName, ToolInputSchema } from '../../contracts/protocol/skill-tools.js';
import { splitFrontMatter } from './front-matter.js';

// Names and refs are shared with the settings (SANDBOT_SKILLS) and chat commands.
export { parseSkillRef, SkillName, SkillVersion, skillRef } from '../../contracts/policy/skill-ref.js';

/**
 * A skill's manifest: `skill.json`, or the front matter of `SKILL.md` (whose body is then the
 * instructions). Parsed with zod; every error names the field and what to write instead.
 */

/** A path inside the skill's folder: relative, no "..", plain characters. */
export const SkillPath = z
  .string()
  .min(1)
  .max(400)
  .regex(/^[A-Za-z0-9._-][A-Za-z0-9._/-]*$/, 'a relative path of letters, digits, ".", "_", "-" and "/"')
  .refine(
    (p) => !p.split('/').some((part) => part === '..' || part === '.' || part === ''),
    'no "..", "." or "//"',
  );

export const SkillToolManifest = z.strictObject({
  name: SkillToolName,
  description: z.string().min(1).max(500),
  /** The script that implements the tool, relative to the skill's folder; it reads its input (JSON) on stdin. */
  run: SkillPath,
  /** Runs the script with this interpreter; without one the script needs a #! line. */
  interpreter: z.enum(['bash', 'sh', 'node', 'python3']).optional(),
  input: ToolInputSchema.default({ type: 'object', properties: {} }),
  /** Arguments the behavioural run gives the tool when vetting it (absent: `{}`). */
  example: z.record(z.string(), z.unknown()).optional(),
});
export type SkillToolManifest = z.infer<typeof SkillToolManifest>;

export const SkillPermissions = z.strictObject({
  /** Hosts the skill's tools need (exact or *.suffix, optional :port); granted only once an admin approves them. */
  hosts: z.array(Grant).max(20).default([]),
  /** Files (in /workspace) the skill reads, as documentation for the reviewer. */
  files: z.array(z.string().min(1).max(400)).max(50).default([]),
  /** Wall time of one tool call, seconds (also capped by SANDBOX_TOOL_TIMEOUT_SECONDS). */
  timeoutSeconds: z.number().int().min(1).max(3600).default(30),
  /** Data memory of one tool call, MiB (also capped by the sandbox's memory). */
  memoryMb: z.number().int().min(16).max(65_536).default(256),
});
export type SkillPermissions = z.infer<typeof SkillPermissions>;

export const SkillManifest = z
  .strictObject({
    name: SkillName,
    version: SkillVersion,
    description: z.string().min(1).max(500),
    /** What the model is told about the skill (appended to the system prompt while it is enabled). */
    instructions: z.string().min(1).max(20_000),
    tools: z.array(SkillToolManifest).max(16).default([]),
    permissions: SkillPermissions.default({ hosts: [], files: [], timeoutSeconds: 30, memoryMb: 256 }),
  })
  .refine((m) => new Set(m.tools.map((t) => t.name)).size === m.tools.length, 'two tools share a name');
export type SkillManifest = z.infer<typeof SkillManifest>;

export type ManifestResult =
  | { ok: true; manifest: SkillManifest; source: string }
  | { ok: false; error: string };

/**
 * Reads the manifest from a skill's files (path → text): skill.json when present (its instructions may
 * come from SKILL.md's body), else SKILL.md's front matter with its body as the instructions. Checks
 * that every tool's script is one of the files.
 */
export function parseManifest(files: ReadonlyMap<string, string>): ManifestResult {
  const json = files.get('skill.json');
  const markdown = files.get('SKILL.md');
  let raw: Record<string, unknown>;
  let source: string;
  const front = markdown === undefined ? undefined : splitFrontMatter(markdown);
  if (front && 'error' in front) return { ok: false, error: front.error };
  if (json !== undefined) {
    source = 'skill.json';
    try {
      const parsed: unknown = JSON.parse(json);
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
        throw new Error('not an object');
      raw = parsed as Record<string, unknown>;
    } catch (error) {
      return { ok: false, error: `skill.json is not a JSON object: ${(error as Error).message}` };
    }
    const body = front ? front.body : markdown?.trim();
    if (raw.instructions === undefined && body) raw = { ...raw, instructions: body };
  } else if (front) {
    source = 'SKILL.md';
    raw = { ...front.data, ...(front.body ? { instructions: front.body } : {}) };
  } else {
    return {
      ok: false,
      error:
        'no manifest: a skill needs skill.json, or SKILL.md starting with "---" front matter (name, version, description)',
    };
  }
  const parsed = SkillManifest.safeParse(raw);
  if (!parsed.success) return { ok: false, error: `${source}: ${describeIssues(parsed.error)}` };
  for (const tool of parsed.data.tools) {
    if (!files.has(tool.run)) {
      return {
        ok: false,
        error: `${source}: tool ${tool.name} runs "${tool.run}", which is not a file of the skill`,
      };
    }
  }
  return { ok: true, manifest: parsed.data, source };
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((issue) => `${issue.path.join('.') || '(manifest)'}: ${issue.message}`)
    .join('; ');
}

/** Orders versions: numeric parts first; a pre-release sorts before its release. */
export function compareVersions(a: string, b: string): number {
  const split = (v: string) => {
    const [core = '', pre] = v.split(/-(.*)/s);
    return { parts: core.split('.').map(Number), pre };
  };
  const x = split(a);
  const y = split(b);
  for (let i = 0; i < 3; i++) {
    const d = (x.parts[i] ?? 0) - (y.parts[i] ?? 0);
    if (d !== 0) return d;
  }
  if (x.pre === y.pre) return 0;
  if (x.pre === undefined) return 1;
  if (y.pre === undefined) return -1;
  return x.pre < y.pre ? -1 : 1;
}
