import { createHash } from 'node:crypto';
import { Script } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { webChatEnabled } from '../../adapters/web/enabled.js';
import { describeIssues, postMessageBody, toInboundMessage } from '../../adapters/web/message-request.js';
import { CHAT_PAGE_HEADERS, renderChatPage } from '../../adapters/web/page.js';
import { CHAT_PAGE_SCRIPT } from '../../adapters/web/page-script.js';
import { formatSseComment, formatSseEvent } from '../../adapters/web/sse.js';
import { webConversationId } from '../../src/contracts/conversation/id.js';
import { bearerToken, hostAllowed, tokenMatches } from '../../src/gateway/http-auth.js';

describe('POST /api/messages body', () => {
  const schema = postMessageBody(10);

  it('trims the user name and keeps the text as written', () => {
    expect(schema.parse({ conversation: 'a-b_c', user: '  ada ', text: ' hi\n' })).toEqual({
      conversation: 'a-b_c',
      user: 'ada',
      text: ' hi\n',
    });
  });

  it('lists every problem, each naming its field', () => {
    const result = schema.safeParse({ conversation: '', user: 3, text: 'x'.repeat(11) });
    expect(result.success).toBe(false);
    if (result.success) return;
    expect(describeIssues(result.error)).toBe(
      'conversation must be 1–64 letters, digits, "-" or "_"; user: must be a string; text: must be at most 10 characters',
    );
  });

  it('becomes an InboundMessage the queue accepts', () => {
    const now = new Date('2025-01-02T03:04:05.000Z');
    const message = toInboundMessage({ conversation: 's1', user: 'ada', text: 'hello' }, now, 'm-1');
    expect(message).toEqual({
      id: 'm-1',
      conversation: webConversationId('s1'),
      platform: 'web',
      user: { id: 'ada', name: 'ada' },
      text: 'hello',
      receivedAt: '2025-01-02T03:04:05.000Z',
      route: {},
      files: [],
    });
  });
});

describe('API token', () => {
  it('matches only the exact token', () => {
    expect(tokenMatches('s3cret', 's3cret')).toBe(true);
    expect(tokenMatches('s3cre', 's3cret')).toBe(false);
    expect(tokenMatches('s3cret ', 's3cret')).toBe(false);
    expect(tokenMatches(undefined, 's3cret')).toBe(false);
  });

  it('reads a Bearer header, and nothing else', () => {
    expect(bearerToken('Bearer abc.def')).toBe('abc.def');
    expect(bearerToken('bearer  abc')).toBe('abc');
    expect(bearerToken('Basic abc')).toBeUndefined();
    expect(bearerToken('Bearer')).toBeUndefined();
    expect(bearerToken('Bearer a b')).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });
});

describe('DNS-rebinding guard', () => {
  it('on a loopback bind, answers only loopback names', () => {
    for (const host of ['127.0.0.1:8787', 'localhost:8787', 'LOCALHOST', '[::1]:8787', '127.0.0.2']) {
      expect(hostAllowed(host, '127.0.0.1')).toBe(true);
    }
    for (const host of ['evil.example:8787', '127.0.0.1.evil.example', '[::2]:80', undefined]) {
      expect(hostAllowed(host, '127.0.0.1')).toBe(false);
    }
    expect(hostAllowed('evil.example', 'localhost')).toBe(false);
  });

  it('guards every bind address: loopback names, the bind address itself and SANDBOT_HTTP_ALLOWED_HOSTS', () => {
    expect(hostAllowed('sandbot.lan:8787', '0.0.0.0')).toBe(false);
    expect(hostAllowed('0.0.0.0:8787', '0.0.0.0')).toBe(false);
    expect(hostAllowed('localhost:8787', '0.0.0.0')).toBe(true);
    expect(hostAllowed('[::1]:8787', '::')).toBe(true);
    expect(hostAllowed('192.168.1.5:8787', '192.168.1.5')).toBe(true);
    expect(hostAllowed('[fd00::5]:8787', 'fd00::5')).toBe(true);
    expect(hostAllowed('Sandbot.LAN:8787', '0.0.0.0', ['sandbot.lan'])).toBe(true);
    expect(hostAllowed('sandbot.lan', '0.0.0.0', ['sandbot.lan:8787'])).toBe(true);
    expect(hostAllowed('sandbot.lan.attacker.example', '0.0.0.0', ['sandbot.lan'])).toBe(false);
    expect(hostAllowed('', '0.0.0.0', ['sandbot.lan'])).toBe(false);
    expect(hostAllowed('[FD00::7]:8787', '::', ['fd00::7'])).toBe(true);
    expect(hostAllowed('[fd00::8]:8787', '::', ['fd00::7'])).toBe(false);
  });

  it('answers names from SANDBOT_HTTP_ALLOWED_HOSTS on a loopback bind too', () => {
    expect(hostAllowed('sandbot.test:8787', '127.0.0.1', ['sandbot.test'])).toBe(true);
    expect(hostAllowed('rebind.attacker.example', '127.0.0.1', ['sandbot.test'])).toBe(false);
  });
});

describe('Server-Sent Events', () => {
  it('keeps each event on one data line whatever its text holds', () => {
    const event = {
      id: 'e1',
      conversation: webConversationId('s'),
      platform: 'web' as const,
      route: {},
      type: 'reply' as const,
      text: 'two\n\nlines\r\n',
    };
    const text = formatSseEvent({ id: '1-0', event });
    expect(text.split('\n')).toEqual(['id: 1-0', `data: ${JSON.stringify(event)}`, '', '']);
    expect(formatSseComment('a\nb')).toBe(': a b\n\n');
  });
});

describe('chat page', () => {
  const html = renderChatPage({ tokenRequired: false, maxMessageChars: 8000 });

  it('has browser code that compiles', () => {
    expect(() => new Script(CHAT_PAGE_SCRIPT)).not.toThrow();
  });

  it('allows exactly its own inline script and style in the CSP', () => {
    const csp = CHAT_PAGE_HEADERS['content-security-policy'] ?? '';
    const hash = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
    const script = /<script>([\s\S]*)<\/script>/.exec(html)?.[1] ?? '';
    const style = /<style>([\s\S]*)<\/style>/.exec(html)?.[1] ?? '';
    expect(csp).toContain(`script-src ${hash(script)}`);
    expect(csp).toContain(`style-src ${hash(style)}`);
    expect(html).not.toMatch(/ style="/); // inline style attributes would be blocked
  });

  it('labels every input', () => {
    const ids = [...html.matchAll(/<(?:input|textarea)[^>]* id="([^"]+)"/g)].map((m) => m[1]);
    expect(ids).toEqual(['conversation', 'user', 'token', 'text']);
    for (const id of ids) expect(html).toContain(`<label for="${id}">`);
  });
});

describe('webChatEnabled', () => {
  it('auto serves the web chat only without a chat platform token', () => {
    const none = { SLACK_BOT_TOKEN: undefined, DISCORD_TOKEN: undefined };
    expect(webChatEnabled({ SANDBOT_WEB_CHAT: 'auto', ...none })).toBe(true);
    expect(webChatEnabled({ SANDBOT_WEB_CHAT: 'auto', ...none, SLACK_BOT_TOKEN: 'xoxb-1' })).toBe(false);
    expect(webChatEnabled({ SANDBOT_WEB_CHAT: 'auto', ...none, DISCORD_TOKEN: 'd' })).toBe(false);
    expect(webChatEnabled({ SANDBOT_WEB_CHAT: 'on', ...none, DISCORD_TOKEN: 'd' })).toBe(true);
    expect(webChatEnabled({ SANDBOT_WEB_CHAT: 'off', ...none })).toBe(false);
  });
});
