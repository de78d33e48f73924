import { describe, expect, it } from 'vitest';
import { MAX_FILES_PER_MESSAGE, MAX_UPLOAD_BYTES, planReply } from '../../adapters/discord/reply-sender.js';
import { layoutReply, openFence, splitMessage } from '../../adapters/discord/split.js';

const squash = (s: string) => s.replace(/```\w*\n?/g, '').replace(/\s+/g, '');

describe('splitting a reply into Discord messages', () => {
  it('leaves a short text alone and drops an empty one', () => {
    expect(splitMessage('hello')).toEqual(['hello']);
    expect(splitMessage('x'.repeat(2000))).toEqual(['x'.repeat(2000)]);
    expect(splitMessage('  \n')).toEqual([]);
  });

  it('cuts at paragraphs first, keeping every word', () => {
    const paragraph = 'word '.repeat(100).trim();
    const text = Array.from({ length: 8 }, () => paragraph).join('\n\n');
    const parts = splitMessage(text, 1200);
    expect(parts.length).toBeGreaterThan(1);
    for (const part of parts) {
      expect(part.length).toBeLessThanOrEqual(1200);
      expect(part.startsWith('word') && part.endsWith('word')).toBe(true);
    }
    expect(parts.join('\n\n')).toBe(text);
  });

  it('closes a code block at a cut and reopens it with its language', () => {
    const text = `Here:\n\`\`\`python\n${'print(1)\n'.repeat(300)}\`\`\`\nDone.`;
    const parts = splitMessage(text);
    expect(parts.length).toBeGreaterThan(1);
    for (const part of parts) {
      expect(part.length).toBeLessThanOrEqual(2000);
      expect(openFence(part)).toBeNull();
    }
    expect(parts[1]?.startsWith('```python\n')).toBe(true);
    expect(parts.at(-1)?.endsWith('Done.')).toBe(true);
    expect(squash(parts.join(''))).toBe(squash(text));
  });

  it('cuts text without spaces at the limit, never inside a surrogate pair', () => {
    const text = `${'a'.repeat(1995)}${'😀'.repeat(10)}`;
    const parts = splitMessage(text);
    expect(parts.join('')).toBe(text);
    for (const part of parts) expect(part.length).toBeLessThanOrEqual(2000);
    for (const part of parts) expect(() => encodeURIComponent(part)).not.toThrow();
  });

  it('sends a reply that would take more than a few messages as reply.md with a preview', () => {
    const text = 'line\n'.repeat(3000);
    const layout = layoutReply(text);
    expect(layout).toMatchObject({ kind: 'file', fileName: 'reply.md', content: text });
    if (layout.kind !== 'file') return;
    expect(layout.preview.length).toBeLessThanOrEqual(2000);
    expect(layout.preview).toContain('attached as reply.md');
    expect(layoutReply('short')).toEqual({ kind: 'messages', chunks: ['short'] });
  });
});

describe('planning a reply with files', () => {
  const file = (name: string, size: number) => ({ name, data: Buffer.alloc(size) });

  it('attaches files to the last message, at most 10 per message', () => {
    const files = Array.from({ length: 12 }, (_, i) => file(`f${i}.txt`, 10));
    const parts = planReply('done', files, []);
    expect(parts).toHaveLength(2);
    expect(parts[0]).toMatchObject({ content: 'done' });
    expect(parts[0]?.files).toHaveLength(MAX_FILES_PER_MESSAGE);
    expect(parts[1]).toMatchObject({ content: '' });
    expect(parts[1]?.files?.map((f) => f.name)).toEqual(['f10.txt', 'f11.txt']);
  });

  it('notes files Discord would refuse and files that expired, instead of failing', () => {
    const parts = planReply(
      'done',
      [file('huge.bin', MAX_UPLOAD_BYTES + 1)],
      ['old.txt expired before it could be sent'],
    );
    expect(parts).toEqual([
      {
        content: `done\n\n(old.txt expired before it could be sent)\n(huge.bin: ${MAX_UPLOAD_BYTES + 1} bytes is more than Discord accepts in one message)`,
      },
    ]);
  });

  it('says something when there is neither text nor a file', () => {
    expect(planReply('', [], [])).toEqual([{ content: '(no reply text)' }]);
    expect(planReply('', [file('a.txt', 1)], [])).toEqual([
      { content: '', files: [expect.objectContaining({ name: 'a.txt' })] },
    ]);
  });
});
