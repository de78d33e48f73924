/**
 * The web chat's browser code, served inline (no build step, no external assets). Plain ES2020 kept in a
 * string because it runs in the browser, not in Node; a unit test checks that it compiles.
 * Text from the server is only ever set with textContent, never parsed as HTML.
 */
export const CHAT_PAGE_SCRIPT = `
(() => {
  'use strict';
  const NAME = /^[A-Za-z0-9_-]{1,64}$/;
  const $ = (id) => document.getElementById(id);
  const els = {
    settings: $('settings'), conversation: $('conversation'), newConversation: $('new-conversation'),
    user: $('user'), tokenField: $('token-field'), token: $('token'),
    transcript: $('transcript'), status: $('status'), composer: $('composer'), text: $('text'), send: $('send'),
  };
  const store = {
    get(key) { try { return localStorage.getItem('sandbot.' + key); } catch { return null; } },
    set(key, value) {
      try {
        if (value === null || value === '') localStorage.removeItem('sandbot.' + key);
        else localStorage.setItem('sandbot.' + key, value);
      } catch { /* storage disabled: the page still works for this visit */ }
    },
  };
  let conversation = '';
  let source = null;
  const cards = new Map();

  function randomName() {
    const bytes = new Uint8Array(9);
    crypto.getRandomValues(bytes);
    return 'chat-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }
  function setStatus(text) { els.status.textContent = text; }
  function showTokenField() { els.tokenField.hidden = false; }
  function token() { return els.token.value.trim(); }

  function transcript() {
    try { return JSON.parse(store.get('transcript.' + conversation) || '[]'); } catch { return []; }
  }
  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  // An approval card: the same words as on Slack and Discord (the server sends them), the agent's
  // reason as plain text, buttons while it is pending; edited in place when the outcome arrives.
  function renderCard(entry) {
    let item = cards.get(entry.id);
    const fresh = !item;
    if (!item) {
      item = element('div', 'message approval');
      item.dataset.approval = entry.id;
      cards.set(entry.id, item);
    }
    const card = entry.card;
    item.replaceChildren(element('span', 'who', 'Approval request'), element('div', 'body', card.title),
      element('div', 'reason', card.reason));
    if (card.outcome) item.append(element('div', 'outcome', card.outcome));
    if (card.buttons && card.buttons.length) {
      const row = element('div', 'buttons');
      const note = element('div', 'note');
      for (const b of card.buttons) {
        const button = element('button', b.style, b.label);
        button.type = 'button';
        button.dataset.decision = b.decision;
        button.addEventListener('click', () => decide(entry.id, b.decision, row, note));
        row.append(button);
      }
      item.append(row, note);
    }
    if (fresh) { els.transcript.append(item); item.scrollIntoView({ block: 'end' }); }
  }
  async function decide(id, decision, row, note) {
    const buttons = Array.from(row.querySelectorAll('button'));
    buttons.forEach((b) => { b.disabled = true; });
    const headers = { 'content-type': 'application/json' };
    if (token()) headers.authorization = 'Bearer ' + token();
    const name = els.user.value.trim();
    const body = name ? { decision, name } : { decision };
    note.textContent = 'Sending…';
    try {
      const response = await fetch('/api/approvals/' + encodeURIComponent(id), {
        method: 'POST', headers, body: JSON.stringify(body),
      });
      const answer = await response.json().catch(() => ({}));
      if (response.ok) { note.textContent = 'Decided; the agent is told.'; return; }
      if (response.status === 401) showTokenField();
      note.textContent = 'Not decided: ' + (answer.error || response.status + ' ' + response.statusText);
      if (response.status !== 409) buttons.forEach((b) => { b.disabled = false; });
    } catch (err) {
      note.textContent = 'Not decided: the server cannot be reached (' + err.message + ').';
      buttons.forEach((b) => { b.disabled = false; });
    }
  }
  function render(entry) {
    if (entry.kind === 'approval') { renderCard(entry); return; }
    const item = document.createElement('div');
    item.className = 'message ' + entry.kind;
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = entry.kind === 'user' ? entry.who || 'You' : entry.kind === 'error' ? 'Error' : 'sandbot';
    const body = document.createElement('div');
    body.className = 'body';
    body.textContent = entry.text;
    item.append(who, body);
    els.transcript.append(item);
    item.scrollIntoView({ block: 'end' });
  }
  function add(entry) {
    store.set('transcript.' + conversation, JSON.stringify(transcript().concat([entry]).slice(-200)));
    render(entry);
  }
  function addCard(entry) {
    const saved = transcript();
    const at = saved.findIndex((e) => e.kind === 'approval' && e.id === entry.id);
    if (at >= 0) saved[at] = entry; else saved.push(entry);
    store.set('transcript.' + conversation, JSON.stringify(saved.slice(-200)));
    renderCard(entry);
  }

  function connect() {
    if (source) source.close();
    const params = new URLSearchParams();
    if (token()) params.set('token', token());
    const last = store.get('last-event.' + conversation);
    if (last) params.set('lastEventId', last);
    const query = params.toString();
    source = new EventSource('/api/conversations/' + encodeURIComponent(conversation) + '/events' + (query ? '?' + query : ''));
    const current = source;
    source.onopen = () => setStatus('');
    source.onmessage = (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch { return; }
      if (message.lastEventId) store.set('last-event.' + conversation, message.lastEventId);
      if (event.type === 'progress') setStatus(event.text);
      else if (event.type === 'reply') { setStatus(''); add({ kind: 'bot', text: event.text }); }
      else if (event.type === 'error') { setStatus(''); add({ kind: 'error', text: event.message }); }
      else if (event.type === 'approval' && event.card) {
        addCard({ kind: 'approval', id: event.approval.id, card: event.card });
      }
    };
    source.onerror = () => {
      if (current.readyState === EventSource.CLOSED) {
        showTokenField();
        setStatus('Not receiving replies (wrong API token, or the server refused the stream). Fix it and press Apply.');
      } else {
        setStatus('Connection lost; reconnecting…');
      }
    };
  }

  function open(name) {
    conversation = name;
    store.set('conversation', name);
    els.conversation.value = name;
    els.conversation.removeAttribute('aria-invalid');
    els.transcript.replaceChildren();
    cards.clear();
    transcript().forEach(render);
    setStatus('');
    connect();
  }

  function applySettings() {
    store.set('user', els.user.value.trim());
    store.set('token', token());
    const name = els.conversation.value.trim();
    if (!NAME.test(name)) {
      els.conversation.setAttribute('aria-invalid', 'true');
      setStatus('A conversation name is 1–64 letters, digits, "-" or "_".');
      els.conversation.focus();
      return;
    }
    open(name);
  }

  els.settings.addEventListener('submit', (e) => { e.preventDefault(); applySettings(); });
  els.conversation.addEventListener('change', applySettings);
  els.token.addEventListener('change', applySettings);
  els.user.addEventListener('change', () => store.set('user', els.user.value.trim()));
  els.newConversation.addEventListener('click', () => { open(randomName()); els.text.focus(); });

  els.text.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); els.composer.requestSubmit(); }
  });
  els.composer.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = els.text.value;
    if (!text.trim()) return;
    const user = els.user.value.trim() || 'web-user';
    const headers = { 'content-type': 'application/json' };
    if (token()) headers.authorization = 'Bearer ' + token();
    els.send.disabled = true;
    try {
      const response = await fetch('/api/messages', {
        method: 'POST', headers, body: JSON.stringify({ conversation, user, text }),
      });
      if (response.status === 202) {
        els.text.value = '';
        add({ kind: 'user', who: user, text });
        setStatus('Sent; waiting for sandbot…');
      } else {
        const body = await response.json().catch(() => ({}));
        if (response.status === 401) showTokenField();
        render({ kind: 'error', text: 'Not sent: ' + (body.error || response.status + ' ' + response.statusText) });
      }
    } catch (err) {
      render({ kind: 'error', text: 'Not sent: the server cannot be reached (' + err.message + ').' });
    } finally {
      els.send.disabled = false;
      els.text.focus();
    }
  });

  els.user.value = store.get('user') || '';
  els.token.value = store.get('token') || '';
  if (document.body.dataset.tokenRequired === 'true' || token()) showTokenField();
  const saved = store.get('conversation');
  open(saved && NAME.test(saved) ? saved : randomName());
})();
`;
