import { describe, expect, it } from 'vitest';
import type { AccessPolicy } from '../../adapters/discord/access.js';
import { SLASH_COMMANDS } from '../../adapters/discord/commands.js';
import type { Place, SlashCommand } from '../../adapters/discord/payloads.js';
import { planCommand } from '../../adapters/discord/plans.js';
import { HELP_TEXT, parseCommandText } from '../../adapters/slack/commands.js';
import { containerSpec, type SandboxLimits, skillsLabel } from '../../sandbox/host/driver/docker-spec.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { parseSkillCommand } from '../../src/shared/stores/skill-control.js';

/** The chat side of skills: the words admins type in Slack and the /skill command in Discord. */

const G = '100000000000000001';
const TEXT = '100000000000000002';
const THREAD = '100000000000000003';
const ADMIN = '200000000000000002';
const policy: AccessPolicy = { guilds: [], channels: [], roles: [], adminRole: ADMIN };
const thread: Place = { kind: 'thread', guildId: G, channelId: THREAD, parentId: TEXT, ownerId: '5' };

function command(options: Record<string, string>, roles: string[], place: Place = thread): SlashCommand {
  return {
    id: '1',
    token: 't',
    applicationId: '5',
    name: 'skill',
    options,
    user: { id: '2', name: 'ada' },
    roles,
    place,
  } as SlashCommand;
}

describe('skill commands', () => {
  it('reads enable, disable and list, and says what is wrong otherwise', () => {
    expect(parseSkillCommand(['enable', 'weather'])).toEqual({ action: 'enable', name: 'weather' });
    expect(parseSkillCommand(['enable', 'weather@1.2.0'])).toEqual({
      action: 'enable',
      name: 'weather',
      version: '1.2.0',
    });
    expect(parseSkillCommand(['disable', 'weather@1.2.0'])).toEqual({ action: 'disable', name: 'weather' });
    expect(parseSkillCommand([])).toEqual({ action: 'list' });
    expect(parseSkillCommand(['enable'])).toMatchObject({
      action: 'invalid',
      message: expect.stringContaining('name one skill'),
    });
    expect(parseSkillCommand(['enable', 'Bad Name!'])).toMatchObject({ action: 'invalid' });
    expect(parseSkillCommand(['install', 'x'])).toMatchObject({
      action: 'invalid',
      message: expect.stringContaining('unknown skill action'),
    });
  });

  it('is a Slack verb, listed in the help', () => {
    expect(parseCommandText('skill enable weather')).toEqual({
      kind: 'verb',
      verb: 'skill',
      rest: 'enable weather',
    });
    expect(parseCommandText('skills')).toMatchObject({ kind: 'verb', verb: 'skills' });
    expect(HELP_TEXT).toContain('/sandbot skill enable <name>');
  });

  it('is a Discord admin command in a thread, registered with its options', () => {
    expect(planCommand(command({ action: 'enable', name: 'weather' }, [ADMIN]), policy)).toMatchObject({
      kind: 'skill',
      words: ['enable', 'weather'],
      conversation: `discord:${G}:${TEXT}:${THREAD}`,
    });
    expect(planCommand(command({}, [ADMIN]), policy)).toMatchObject({ kind: 'skill', words: ['list'] });
    expect(planCommand(command({}, []), policy)).toMatchObject({ kind: 'refuse', reason: 'admin' });
    const registered = SLASH_COMMANDS.find((c) => c.name === 'skill');
    expect(registered?.options.map((o) => o.name)).toEqual(['action', 'name']);
  });
});

describe('skill mounts in the container spec', () => {
  const limits: SandboxLimits = {
    instance: 'prod',
    image: 'img',
    memoryMb: 256,
    cpus: 1,
    pidsLimit: 64,
    tmpMb: 32,
  };
  const conversation = webConversationId('a');

  it('mounts each skill volume read-only at /skills/<name>, labelled so a change recreates the container', () => {
    const mounts = [
      { name: 'weather', volume: 'prod-skill-weather-1' },
      { name: 'greeter', volume: 'prod-skill-greeter-2' },
    ];
    const spec = containerSpec(limits, conversation, undefined, undefined, mounts);
    expect(spec.HostConfig?.Mounts).toEqual(
      expect.arrayContaining([
        { Type: 'volume', Source: 'prod-skill-weather-1', Target: '/skills/weather', ReadOnly: true },
        { Type: 'volume', Source: 'prod-skill-greeter-2', Target: '/skills/greeter', ReadOnly: true },
      ]),
    );
    expect(spec.Labels?.['sandbot.skills']).toBe('greeter=prod-skill-greeter-2,weather=prod-skill-weather-1');
    const plain = containerSpec(limits, conversation);
    expect(plain.Labels?.['sandbot.skills']).toBe(skillsLabel([]));
    expect(plain.HostConfig?.Mounts?.some((m) => m.Target?.startsWith('/skills'))).toBe(false);
  });
});
