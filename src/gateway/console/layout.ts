import { Html, html } from './html.js';

/** The console's pages share this shell: viewport for phones, one stylesheet, nonce'd inline code only. */

const STYLE = `
*{box-sizing:border-box}body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1b1f24;background:#f4f5f7}
header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;justify-content:space-between;padding:.6rem 1rem;background:#1f2937;color:#fff}
header a{color:#fff;text-decoration:none;font-weight:600}header form{margin:0}
main{max-width:1200px;margin:0 auto;padding:1rem;display:grid;grid-template-columns:1fr 1fr;gap:1rem}
section{background:#fff;border:1px solid #d8dce2;border-radius:8px;padding:.8rem 1rem;min-width:0}
section.wide{grid-column:1/-1}h1{font-size:1.1rem;margin:0}h2{font-size:1rem;margin:.2rem 0 .6rem}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eceef1;vertical-align:top}
th{font-weight:600;color:#4b5563}code,.mono{font-family:ui-monospace,monospace;font-size:.85rem;word-break:break-all}
.state{display:inline-block;padding:0 .45rem;border-radius:999px;font-size:.8rem;font-weight:600}
.state-running{background:#dbeafe;color:#1e40af}.state-idle{background:#e5e7eb;color:#374151}
.state-quarantined{background:#fee2e2;color:#991b1b}.muted{color:#6b7280}
.flash{grid-column:1/-1;background:#ecfdf5;border:1px solid #a7f3d0;padding:.6rem 1rem;border-radius:8px}
.card{border:1px solid #e5e7eb;border-radius:6px;padding:.6rem;margin:.5rem 0}
.reason{background:#fffbeb;border-left:3px solid #f59e0b;padding:.3rem .6rem;white-space:pre-wrap;word-break:break-word}
form.inline{display:inline}form.action{display:flex;flex-wrap:wrap;gap:.4rem;align-items:center;margin:.4rem 0}
input[type=text],input[type=password]{padding:.45rem;border:1px solid #c4c9d0;border-radius:6px;font:inherit;min-width:0;flex:1}
button{padding:.45rem .8rem;border-radius:6px;border:1px solid #9ca3af;background:#fff;font:inherit;cursor:pointer}
button.primary{background:#2563eb;border-color:#2563eb;color:#fff}button.danger{background:#dc2626;border-color:#dc2626;color:#fff}
ol.timeline{list-style:none;padding:0;margin:0;font-size:.85rem}
ol.timeline li{display:grid;grid-template-columns:11rem 10rem 1fr;gap:.5rem;padding:.25rem 0;border-bottom:1px solid #f0f1f3}
ol.timeline .kind{font-weight:600}.fam-message .kind{color:#047857}.fam-tool .kind{color:#7c3aed}
.fam-file .kind{color:#b45309}.fam-net .kind{color:#0369a1}.fam-sandbox .kind,.fam-turn .kind{color:#374151}
.fam-approval .kind,.fam-policy .kind{color:#be123c}.detail{word-break:break-word}
.login{max-width:380px;margin:3rem auto;display:block}.login label{display:block;margin:.6rem 0 .2rem}
.login input{width:100%}.login button{margin-top:1rem;width:100%}
@media (max-width:700px){main{grid-template-columns:1fr;padding:.5rem}
ol.timeline li{grid-template-columns:1fr}ol.timeline .time{color:#6b7280}}
`;

export interface PageOptions {
  title: string;
  nonce: string;
  operator?: { name: string; csrf: string };
  flash?: string;
  body: Html;
  script?: string;
}

export function page(options: PageOptions): string {
  const who = options.operator;
  const doc = html`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin">
<title>${options.title} · sandbot console</title>
<style nonce="${options.nonce}">${new Html(STYLE)}</style></head>
<body><header><h1><a href="/console">sandbot console</a></h1>${
    who
      ? html`<form method="post" action="/console/logout"><span>Signed in as <b>${who.name}</b></span>
<input type="hidden" name="csrf" value="${who.csrf}"> <button type="submit">Sign out</button></form>`
      : ''
  }</header>
<main>${options.flash ? html`<p class="flash" role="status">${options.flash}</p>` : ''}${options.body}</main>
${options.script ? html`<script nonce="${options.nonce}">${new Html(options.script)}</script>` : ''}
</body></html>`;
  return doc.text;
}

export function loginPage(nonce: string, error?: string): string {
  return page({
    title: 'Sign in',
    nonce,
    body: html`<section class="login wide"><h2>Sign in</h2>
${error ? html`<p class="reason" role="alert">${error}</p>` : ''}
<form method="post" action="/console/login">
<label for="token">API token (SANDBOT_API_TOKEN)</label>
<input type="password" id="token" name="token" autocomplete="current-password" required>
<label for="name">Your name (recorded with every action)</label>
<input type="text" id="name" name="name" maxlength="100" autocomplete="name" required>
<button class="primary" type="submit">Sign in</button></form></section>`,
  });
}

/** Bytes as a person reads them: 512 B, 3.2 MiB, 1.5 GiB. */
export function formatBytes(bytes: number | undefined): string {
  if (bytes === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** "used of total" or just what is known. */
export function formatShare(used: number | undefined, total: number | undefined): string {
  if (used === undefined) return '—';
  return total ? `${formatBytes(used)} of ${formatBytes(total)}` : formatBytes(used);
}

/** An epoch-ms time as "2026-12-07 08:01:02 UTC". */
export function formatTime(ms: number | undefined): string {
  if (ms === undefined) return '—';
  return new Date(ms)
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, ' UTC');
}
