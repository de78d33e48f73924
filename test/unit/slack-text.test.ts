import { describe, expect, it } from 'vitest';
import { orderSteps, renderProgress } from '../../adapters/slack/progress-message.js';
import {
  escapeForSlack,
  MAX_PARTS,
  preview,
  splitForSlack,
  toPlainText,
} from '../../adapters/slack/slack-text.js';

describe('toPlainText', () => {
  it('removes the bot’s mention and undoes Slack’s escaping', () => {
    expect(toPlainText('<@U0BOT> echo a &gt; b &amp;&amp; cat &lt; b', 'U0BOT')).toBe(
      'echo a > b && cat < b',
    );
  });

  it('turns Slack markup into what the person sees, keeping link targets', () => {
    expect(toPlainText('ask <@U2|bob> in <#C1|general>, <!here>', 'U0BOT')).toBe(
      'ask @bob in #general, @here',
    );
    expect(toPlainText('see <https://example.com/a?b=1&amp;c=2>')).toBe('see https://example.com/a?b=1&c=2');
    expect(toPlainText('see <https://example.com|the docs>')).toBe('see the docs (https://example.com)');
    expect(toPlainText('mail <mailto:a@b.c|a@b.c>')).toBe('mail a@b.c');
    expect(toPlainText('at <!date^1700000000^{date}|Nov 14>')).toBe('at Nov 14');
  });
});

describe('escapeForSlack', () => {
  it('keeps an agent from pinging people or channels, or hiding links', () => {
    expect(escapeForSlack('<!channel> hi <@U1> <https://evil|safe> a&b')).toBe(
      '&lt;!channel&gt; hi &lt;@U1&gt; &lt;https://evil|safe&gt; a&amp;b',
    );
    expect(toPlainText(escapeForSlack('x < y && y > z'))).toBe('x < y && y > z');
  });
});

describe('splitForSlack', () => {
  it('leaves short text alone', () => {
    expect(splitForSlack('hello')).toEqual(['hello']);
    expect(splitForSlack('')).toEqual(['']);
  });

  it('cuts at paragraph boundaries and loses nothing', () => {
    const paragraphs = Array.from({ length: 10 }, (_, i) => `${i}: ${'word '.repeat(30).trim()}`);
    const text = paragraphs.join('\n\n');
    const parts = splitForSlack(text, 500);
    expect(parts.length).toBeGreaterThan(1);
    for (const part of parts) {
      expect(part.length).toBeLessThanOrEqual(500);
      expect(part).toMatch(/^\d+: word/);
    }
    expect(parts.join('\n\n')).toBe(text);
  });

  it('falls back to lines, words, and finally a hard cut', () => {
    const words = 'abc '.repeat(200).trim();
    for (const part of splitForSlack(words, 100)) expect(part.length).toBeLessThanOrEqual(100);
    const solid = 'x'.repeat(1000);
    const parts = splitForSlack(solid, 100);
    expect(parts.join('')).toBe(solid);
    for (const part of parts) expect(part.length).toBeLessThanOrEqual(100);
  });

  it('closes a code block at a cut and reopens it, with its language, in the next part', () => {
    const code = Array.from({ length: 60 }, (_, i) => `const line${i} = ${i};`).join('\n');
    const parts = splitForSlack(`Here:\n\`\`\`ts\n${code}\n\`\`\`\nDone.`, 400);
    expect(parts.length).toBeGreaterThan(2);
    for (const part of parts) {
      expect(part.length).toBeLessThanOrEqual(400);
      const fences = part.split('\n').filter((l) => l.trim().startsWith('```'));
      expect(fences.length % 2).toBe(0);
    }
    expect(parts[1]?.startsWith('```ts\n')).toBe(true);
    expect(parts.at(-1)?.endsWith('Done.')).toBe(true);
  });

  it('makes a reply of a few messages at most before it becomes a file', () => {
    expect(MAX_PARTS).toBeGreaterThanOrEqual(2);
    expect(preview('a\n'.repeat(2000), 100).length).toBeLessThanOrEqual(102);
  });
});

describe('progress message', () => {
  it('shows the state and the latest steps, in the worker’s order', () => {
    const steps = orderSteps({ 'tool:10': 'ten', 'tool:2': 'two', 'tool:1': 'one' });
    expect(steps).toEqual(['one', 'two', 'ten']);
    expect(renderProgress('working', [])).toBe(':hourglass_flowing_sand: Working…');
    const many = Array.from({ length: 11 }, (_, i) => `bash: step ${i + 1}`);
    const text = renderProgress('done', many);
    expect(text.split('\n')[0]).toBe(':white_check_mark: Done – 11 steps');
    expect(text).toContain('… 3 earlier steps');
    expect(text).not.toContain('step 3`');
    expect(text).toContain('step 11');
  });

  it('heads a scheduled run’s progress message with its mark, to the end', () => {
    expect(renderProgress('working', [], '⏰ scheduled task: check <the> deploy')).toBe(
      '⏰ scheduled task: check &lt;the&gt; deploy\n:hourglass_flowing_sand: Working…',
    );
    expect(renderProgress('done', ['bash: ls'], '⏰ scheduled task: x').split('\n')).toEqual([
      '⏰ scheduled task: x',
      ':white_check_mark: Done – 1 step',
      '• `bash: ls`',
    ]);
  });

  it('escapes what the agent ran', () => {
    expect(renderProgress('working', ['bash: echo `<!channel>`'])).toContain(
      "• `bash: echo '&lt;!channel&gt;'`",
    );
  });
});
