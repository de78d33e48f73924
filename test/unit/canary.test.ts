import { describe, expect, it } from 'vitest';
import { canaryFileContent, carriesCanary, touchesCanary } from '../../src/worker/turn/canary.js';

const token = 'AKIA0123456789ABCDEF';

describe('canary detection', () => {
  it('finds the token as is, in hex and base64-encoded at any alignment', () => {
    const file = canaryFileContent(token);
    expect(carriesCanary([{ content: file.toString() }], token)).toBe(true);
    expect(carriesCanary([{ content: file.toString('hex') }], token)).toBe(true);
    for (const prefix of ['', 'x', 'xy', 'xyz']) {
      const encoded = Buffer.concat([Buffer.from(prefix), file]).toString('base64');
      expect(carriesCanary([{ content: `output: ${encoded}` }], token), prefix).toBe(true);
    }
    expect(carriesCanary([{ content: 'nothing to see' }], token)).toBe(false);
    expect(carriesCanary([{ content: Buffer.from('other file').toString('base64') }], token)).toBe(false);
  });

  it('notices tool calls that go for the canary file', () => {
    expect(
      touchesCanary([{ function: { name: 'bash', arguments: { command: 'base64 ~/.aws/credentials' } } }]),
    ).toBe(true);
    expect(touchesCanary([{ function: { name: 'read_file', arguments: { path: 'notes.txt' } } }])).toBe(
      false,
    );
    expect(touchesCanary(undefined)).toBe(false);
  });
});
