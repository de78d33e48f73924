import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { socketOwner } from '../../sandbox/runtime/socket-owner.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import {
  credentialUser,
  grantsForIdentity,
  identifyCredentials,
  mintCredentials,
  withCredentials,
  withStreamSkill,
} from '../../src/worker/egress/skill-credentials.js';

const secret = randomBytes(32);
const alice = webConversationId('alice');
const bob = webConversationId('bob');
/** The header a client sends for the credentials of a proxy URL (user name decoded, as curl does). */
const header = (credentials: string) => {
  const colon = credentials.lastIndexOf(':');
  const user = decodeURIComponent(credentials.slice(0, colon));
  return `Basic ${Buffer.from(`${user}:${credentials.slice(colon + 1)}`).toString('base64')}`;
};
const mac = (credentials: string) => credentials.slice(credentials.lastIndexOf(':') + 1);

describe('proxy credentials of a conversation and of its skills', () => {
  it('names the conversation, or the conversation and the skill', () => {
    expect(credentialUser({ conversation: alice })).toBe('web:alice');
    expect(credentialUser({ conversation: alice, skill: 'weather' })).toBe('web:alice~weather');
    expect(mintCredentials(secret, { conversation: alice, skill: 'weather' })).toMatch(
      /^web%3Aalice~weather:[0-9a-f]{64}$/,
    );
  });

  it('identifies what was minted, and nothing else', () => {
    const own = mintCredentials(secret, { conversation: alice });
    const skill = mintCredentials(secret, { conversation: alice, skill: 'weather' });
    expect(identifyCredentials(secret, header(own))).toEqual({ conversation: alice });
    expect(identifyCredentials(secret, header(skill))).toEqual({ conversation: alice, skill: 'weather' });
    // The conversation's MAC under a skill's name, a skill's MAC under another skill or conversation,
    // or under the bare conversation: all forged.
    for (const forged of [
      `web:alice~weather:${mac(own)}`,
      `web:alice~other:${mac(skill)}`,
      `web:bob~weather:${mac(skill)}`,
      `web:alice:${mac(skill)}`,
      `web:alice~weather:${'0'.repeat(64)}`,
    ]) {
      expect(identifyCredentials(secret, `Basic ${Buffer.from(forged).toString('base64')}`)).toBeUndefined();
    }
    // Another worker's key, a malformed skill name, no header.
    expect(identifyCredentials(randomBytes(32), header(skill))).toBeUndefined();
    const badName = `web:alice~No_Skill:${mac(skill)}`;
    expect(identifyCredentials(secret, `Basic ${Buffer.from(badName).toString('base64')}`)).toBeUndefined();
    expect(identifyCredentials(secret, undefined)).toBeUndefined();
    expect(identifyCredentials(secret, 'Bearer x')).toBeUndefined();
  });

  it('puts other credentials into a proxy URL', () => {
    const url = `http://${mintCredentials(secret, { conversation: bob })}@127.0.0.1:3128`;
    const skill = mintCredentials(secret, { conversation: bob, skill: 'weather' });
    expect(withCredentials(url, skill)).toBe(`http://${skill}@127.0.0.1:3128`);
  });
});

describe('a tunnel stream the runtime named a skill’s', () => {
  const stream = { conversation: alice, skill: 'weather' };
  it('adds the skill to its own sandbox’s credentials', () => {
    expect(withStreamSkill({ conversation: alice }, stream)).toEqual({
      conversation: alice,
      skill: 'weather',
    });
  });

  it('adds nothing to another conversation’s, a skill’s, or no credentials, nor without a named stream', () => {
    expect(withStreamSkill({ conversation: bob }, stream)).toEqual({ conversation: bob });
    expect(withStreamSkill({ conversation: alice, skill: 'maps' }, stream)).toEqual({
      conversation: alice,
      skill: 'maps',
    });
    expect(withStreamSkill(undefined, stream)).toBeUndefined();
    expect(withStreamSkill({ conversation: alice }, undefined)).toEqual({ conversation: alice });
  });
});

describe('what a credential reaches', () => {
  const policy = ['pypi.org'];
  it('is the policy alone for the sandbox’s own credential, whatever skills are enabled', () => {
    expect(grantsForIdentity({ conversation: alice }, policy, ['api.example.com'])).toEqual(['pypi.org']);
  });

  it('adds a skill’s hosts for its credential while it is enabled, and nothing once it is not', () => {
    const id = { conversation: alice, skill: 'weather' };
    expect(grantsForIdentity(id, policy, ['api.example.com', 'pypi.org'])).toEqual([
      'pypi.org',
      'api.example.com',
    ]);
    expect(grantsForIdentity(id, policy, undefined)).toEqual(['pypi.org']);
  });
});

describe('the owner of a loopback connection (/proc/net/tcp)', () => {
  // As gVisor printed it for a listener of uid 1000 on 3128 and a client of uid 2001 on port 32536.
  const table = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   6: 0100007F:0C38 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0        7 1 0 0 0 0 0 -1',
    '  11: 0100007F:7F18 0100007F:0C38 01 00000000:00000000 00:00000000 00000000  2001        0       12 1 0 0 0 0 0 -1',
    '  12: 0100007F:0C38 0100007F:7F18 01 00000000:00000000 00:00000000 00000000  1000        0       13 1 0 0 0 0 0 -1',
  ].join('\n');

  it('is the uid of the client end’s row, not the server end’s', () => {
    expect(socketOwner(table, 32536, 3128)).toBe(2001);
  });

  it('is unknown for a connection not listed (closed already, or another port)', () => {
    expect(socketOwner(table, 32537, 3128)).toBeUndefined();
    expect(socketOwner(table, 32536, 3129)).toBeUndefined();
  });
});
