import { z } from 'zod';
import { HostToolArgs } from './host-tools.js';
import { ToolArgs } from './tools.js';

/**
 * Tools that vetted skills add to a turn. A skill declares each tool's input with a small subset of
 * JSON Schema (objects of strings, numbers, booleans and flat arrays): enough for tool arguments, and
 * small enough that the runtime validates it exactly with zod, without a schema engine of its own.
 * Shared by the worker (what it offers the model) and the runtime (what it validates and runs).
 */

const description = z.string().max(500).optional();
const title = z.string().max(200).optional();

const StringProperty = z.strictObject({
  type: z.literal('string'),
  description,
  title,
  enum: z.array(z.string().max(200)).min(1).max(100).optional(),
  minLength: z.number().int().nonnegative().optional(),
  maxLength: z.number().int().positive().max(100_000).optional(),
  pattern: z
    .string()
    .max(200)
    .refine((p) => compiles(p), 'pattern must be a valid regular expression')
    .optional(),
});
const NumberProperty = z.strictObject({
  type: z.enum(['number', 'integer']),
  description,
  title,
  minimum: z.number().optional(),
  maximum: z.number().optional(),
});
const BooleanProperty = z.strictObject({ type: z.literal('boolean'), description, title });
const ArrayProperty = z.strictObject({
  type: z.literal('array'),
  description,
  title,
  items: z.union([StringProperty, NumberProperty, BooleanProperty]),
  minItems: z.number().int().nonnegative().optional(),
  maxItems: z.number().int().positive().max(1000).optional(),
});
const Property = z.union([StringProperty, NumberProperty, BooleanProperty, ArrayProperty]);
type Property = z.infer<typeof Property>;

const PropertyName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'a property name is a word');

/** A tool's input: a JSON Schema object of simple properties (other keywords are refused, not ignored). */
export const ToolInputSchema = z
  .strictObject({
    $schema: z.string().max(200).optional(),
    title,
    description,
    type: z.literal('object'),
    properties: z
      .record(PropertyName, Property)
      .refine((p) => Object.keys(p).length <= 32, 'at most 32 properties')
      .default({}),
    required: z.array(PropertyName).max(32).optional(),
    additionalProperties: z.literal(false).optional(),
  })
  .refine(
    (s) => (s.required ?? []).every((name) => name in s.properties),
    'every "required" name must be one of the "properties"',
  );
export type ToolInputSchema = z.infer<typeof ToolInputSchema>;

/**
 * A skill tool's name: a word that is not one of the built-in tools, nor one the worker carries out
 * itself (`delegate`): skills must not shadow them.
 */
export const SkillToolName = z
  .string()
  .regex(
    /^[a-z][a-z0-9_]{1,47}$/,
    'a tool name is 2–48 lower-case letters, digits or "_", starting with a letter',
  )
  .refine(
    (name) => !(name in ToolArgs) && !(name in HostToolArgs),
    'a skill tool may not take the name of a built-in tool',
  );

/** Where a skill's files are mounted in the sandbox, read-only. */
export const SKILLS_ROOT = '/skills';

/** What the runtime needs to run one skill tool; sent with the `turn` message. */
export const SkillToolSpec = z.object({
  name: SkillToolName,
  /** The skill it belongs to, "name@version". */
  skill: z.string().max(100),
  description: z.string().max(1000),
  input: ToolInputSchema,
  /** The script, under /skills/<skill>/; run with `interpreter`, or executed directly (#! line). */
  run: z
    .string()
    .max(512)
    .regex(/^\/skills\/[a-z][a-z0-9-]{1,39}\/[A-Za-z0-9._/-]+$/, 'a script path under /skills/<skill>/')
    .refine((p) => !p.split('/').includes('..'), 'no ".." in a script path'),
  interpreter: z.enum(['bash', 'sh', 'node', 'python3']).optional(),
  timeoutMs: z.number().int().positive(),
  memoryMb: z.number().int().positive(),
});
export type SkillToolSpec = z.infer<typeof SkillToolSpec>;

/** The zod validator of a declared input: exactly the declared properties, the required ones present. */
export function inputValidator(schema: ToolInputSchema): z.ZodType<Record<string, unknown>> {
  const required = new Set(schema.required ?? []);
  const shape: Record<string, z.ZodType> = {};
  for (const [name, property] of Object.entries(schema.properties)) {
    const value = propertyValidator(property);
    shape[name] = required.has(name) ? value : value.optional();
  }
  return z.strictObject(shape) as unknown as z.ZodType<Record<string, unknown>>;
}

function propertyValidator(property: Property): z.ZodType {
  switch (property.type) {
    case 'string': {
      if (property.enum) return z.enum(property.enum as [string, ...string[]]);
      let s = z.string();
      if (property.minLength !== undefined) s = s.min(property.minLength);
      if (property.maxLength !== undefined) s = s.max(property.maxLength);
      if (property.pattern !== undefined) s = s.regex(new RegExp(property.pattern));
      return s;
    }
    case 'number':
    case 'integer': {
      let n = property.type === 'integer' ? z.number().int() : z.number();
      if (property.minimum !== undefined) n = n.min(property.minimum);
      if (property.maximum !== undefined) n = n.max(property.maximum);
      return n;
    }
    case 'boolean':
      return z.boolean();
    case 'array': {
      let a = z.array(propertyValidator(property.items));
      if (property.minItems !== undefined) a = a.min(property.minItems);
      if (property.maxItems !== undefined) a = a.max(property.maxItems);
      return a;
    }
  }
}

export interface SkillToolDefinition {
  type: 'function';
  function: { name: string; description: string; parameters: Record<string, unknown> };
}

/** The tool as Ollama's /api/chat expects it (the description names the skill). */
export function skillToolDefinition(tool: SkillToolSpec): SkillToolDefinition {
  const { $schema: _dialect, ...parameters } = tool.input;
  return {
    type: 'function' as const,
    function: {
      name: tool.name,
      description: `${tool.description} (from skill ${tool.skill})`,
      parameters: { ...parameters, additionalProperties: false } as Record<string, unknown>,
    },
  };
}

function compiles(pattern: string): boolean {
  try {
    new RegExp(pattern);
    return true;
  } catch {
    return false;
  }
}

/**
 * The uids of a sandbox (the runtime itself runs with real uid 0 and effective uid AGENT_UID): the
 * agent's commands run as AGENT_UID; the tools of the i-th skill holding a proxy credential run as
 * SKILL_UID_BASE + i, so neither the agent nor another skill can read that credential from its process.
 */
export const AGENT_UID = 1000;
export const SKILL_UID_BASE = 2001;
/** At most this many skills of one turn get a credential (and a uid) of their own. */
export const MAX_SKILL_ACCESS = 16;

/**
 * A skill's own way out, sent with the `turn` message; the i-th skill's tools run as SKILL_UID_BASE + i.
 * On a bridge, `proxyUrl` carries that skill's credential (src/worker/egress/skill-credentials.ts),
 * handed only to those processes. Tunnelled, there is none: the runtime tags the tunnel streams its
 * processes open with the skill's name (egress.ts EgressOpen).
 */
export const SkillAccess = z.object({
  skill: z.string().regex(/^[a-z][a-z0-9-]{1,39}$/),
  proxyUrl: z.string().max(2048).optional(),
});
export type SkillAccess = z.infer<typeof SkillAccess>;
