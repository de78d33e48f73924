import { createHash } from 'node:crypto';
import { CHAT_PAGE_SCRIPT } from './page-script.js';

const STYLE = `
:root { color-scheme: light dark; --bg: #fff; --fg: #1b1b1b; --muted: #5c5c5c; --line: #d0d0d0;
  --user: #e8f0fe; --bot: #f3f3f3; --error: #fdecea; --accent: #1a56db; }
@media (prefers-color-scheme: dark) { :root { --bg: #121212; --fg: #e8e8e8; --muted: #a8a8a8; --line: #3a3a3a;
  --user: #1e2a44; --bot: #222; --error: #4a1f1c; --accent: #8ab4f8; } }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, sans-serif; background: var(--bg); color: var(--fg); }
header, main { max-width: 50rem; margin: 0 auto; padding: 0.75rem 1rem; }
header { border-bottom: 1px solid var(--line); }
h1 { font-size: 1.25rem; margin: 0 0 0.5rem; }
.settings { display: flex; flex-wrap: wrap; gap: 0.5rem 1rem; align-items: end; }
.field { display: flex; flex-direction: column; font-size: 0.875rem; }
.help { flex-basis: 100%; margin: 0; font-size: 0.8125rem; color: var(--muted); }
input, textarea, button { font: inherit; color: inherit; background: var(--bg); border: 1px solid var(--line);
  border-radius: 0.375rem; padding: 0.375rem 0.5rem; }
button { cursor: pointer; background: var(--accent); color: var(--bg); border-color: var(--accent); }
button:disabled { opacity: 0.6; cursor: progress; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
[aria-invalid="true"] { border-color: #c5221f; }
#transcript { display: flex; flex-direction: column; gap: 0.5rem; min-height: 40vh; padding: 0.5rem 0; }
.message { padding: 0.5rem 0.75rem; border-radius: 0.5rem; max-width: 90%; }
.message.user { align-self: flex-end; background: var(--user); }
.message.bot { align-self: flex-start; background: var(--bot); }
.message.error { align-self: flex-start; background: var(--error); }
.message.approval { align-self: stretch; max-width: 100%; background: var(--bot); border: 1px solid var(--line); }
.approval .reason { font-style: italic; white-space: pre-wrap; overflow-wrap: anywhere; }
.approval .outcome { font-weight: 600; margin-top: 0.25rem; }
.approval .buttons { display: flex; flex-wrap: wrap; gap: 0.5rem; margin-top: 0.5rem; }
.approval button.secondary { background: var(--bg); color: var(--fg); border-color: var(--line); }
.approval button.danger { background: #c5221f; border-color: #c5221f; }
.approval .note { font-size: 0.8125rem; color: var(--muted); }
.who { display: block; font-size: 0.75rem; font-weight: 600; color: var(--muted); }
.body { white-space: pre-wrap; overflow-wrap: anywhere; }
#status { min-height: 1.5em; margin: 0.25rem 0; color: var(--muted); font-style: italic; }
#composer { display: flex; flex-direction: column; gap: 0.5rem; }
#composer .row { display: flex; gap: 0.5rem; align-items: end; }
#composer textarea { flex: 1; resize: vertical; }
`;

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

/** Only this page's own inline script and style may run; it talks to its own origin and nothing else. */
export const CHAT_PAGE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': [
    "default-src 'none'",
    `script-src ${sha256(CHAT_PAGE_SCRIPT)}`,
    `style-src ${sha256(STYLE)}`,
    "connect-src 'self'",
    'img-src data:',
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; '),
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

export interface ChatPageOptions {
  tokenRequired: boolean;
  maxMessageChars: number;
}

/** The self-contained web chat page. Only numbers and booleans are interpolated: nothing to escape. */
export function renderChatPage(options: ChatPageOptions): string {
  const maxChars = Math.floor(options.maxMessageChars);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sandbot</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body data-token-required="${options.tokenRequired ? 'true' : 'false'}">
<header>
  <h1>sandbot</h1>
  <form id="settings" class="settings" aria-label="Chat settings">
    <div class="field">
      <label for="conversation">Conversation</label>
      <input id="conversation" name="conversation" maxlength="64" pattern="[A-Za-z0-9_\\-]{1,64}" required
        autocomplete="off" spellcheck="false" aria-describedby="conversation-help">
    </div>
    <button type="button" id="new-conversation">New conversation</button>
    <div class="field">
      <label for="user">Your name</label>
      <input id="user" name="user" maxlength="128" autocomplete="nickname" placeholder="web-user">
    </div>
    <div class="field" id="token-field" hidden>
      <label for="token">API token</label>
      <input id="token" name="token" type="password" autocomplete="off">
    </div>
    <button type="submit">Apply</button>
    <p id="conversation-help" class="help">Each conversation has its own sandbox and history.
      Anyone who knows its name can read it: keep the name private.</p>
  </form>
</header>
<main>
  <div id="transcript" role="log" aria-live="polite" aria-label="Transcript"></div>
  <p id="status" role="status" aria-live="polite"></p>
  <form id="composer" aria-label="Send a message">
    <label for="text">Message</label>
    <div class="row">
      <textarea id="text" name="text" rows="3" maxlength="${maxChars}" required
        aria-describedby="text-help"></textarea>
      <button id="send" type="submit">Send</button>
    </div>
    <p id="text-help" class="help">Enter sends; Shift+Enter starts a new line.</p>
  </form>
</main>
<script>${CHAT_PAGE_SCRIPT}</script>
</body>
</html>
`;
}
