// The kvserve playground: a chat over this server's own /v1/chat/completions, streamed (stream: true) and
// read from the response body with a ReadableStream reader, event by event. No dependencies, no build step.
const $ = (id) => document.getElementById(id);
const ui = {
  model: $('model'),
  status: $('status'),
  messages: $('messages'),
  empty: $('empty'),
  composer: $('composer'),
  prompt: $('prompt'),
  send: $('send'),
  stop: $('stop'),
  reset: $('reset'),
  stats: $('stats'),
  system: $('system'),
  temperature: $('temperature'),
  topP: $('top_p'),
  maxTokens: $('max_tokens'),
  keyField: $('key-field'),
  apiKey: $('api_key'),
};

/** The conversation as the API sees it: [{role, content}], without the system prompt. */
let history = [];
/** Set while a reply streams; aborting it stops the request (the server then stops generating). */
let inflight = null;

const SETTINGS = ['system', 'temperature', 'topP', 'maxTokens'];

function headers() {
  const h = { 'content-type': 'application/json' };
  const key = ui.apiKey.value.trim();
  if (key) h.authorization = `Bearer ${key}`;
  return h;
}

function setStatus(text, kind = '') {
  ui.status.textContent = text;
  ui.status.dataset.kind = kind;
}

/** An Error with the OpenAI error envelope's message and code, or the HTTP status. */
async function apiError(res) {
  try {
    const body = await res.json();
    if (body?.error?.message) return Object.assign(new Error(body.error.message), { code: body.error.code });
  } catch {
    /* not JSON */
  }
  return new Error(`HTTP ${res.status} ${res.statusText}`);
}

async function loadModels() {
  let res;
  try {
    res = await fetch('/v1/models', { headers: headers() });
  } catch {
    setStatus('The server does not answer.', 'error');
    return;
  }
  if (res.status === 401) {
    ui.keyField.hidden = false;
    setStatus(
      ui.apiKey.value ? 'That API key is not accepted.' : 'This server needs an API key: enter it under Settings.',
      'error',
    );
    if (!ui.apiKey.value) ui.apiKey.focus();
    return;
  }
  if (!res.ok) {
    setStatus((await apiError(res)).message, 'error');
    return;
  }
  const { data } = await res.json();
  const chosen = ui.model.value;
  ui.model.replaceChildren(...data.map((m) => new Option(m.id, m.id, false, m.id === chosen)));
  await waitUntilReady();
}

/** /health answers 503 with the loading stage until the model serves. */
async function waitUntilReady() {
  for (;;) {
    let res;
    try {
      res = await fetch('/health');
    } catch {
      setStatus('The server does not answer.', 'error');
      return;
    }
    if (res.ok) {
      setStatus(`Ready: ${ui.model.value}`, 'ok');
      return;
    }
    const body = await res.json().catch(() => ({}));
    const pct = typeof body.progress === 'number' ? ` ${Math.floor(body.progress * 100)}%` : '';
    setStatus(`Loading the model (${body.stage ?? 'starting'}${pct})…`, 'busy');
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/**
 * POSTs the conversation. A conversation grown past the context loses its oldest exchange (shown faded)
 * and is sent again, until only the newest message is left.
 */
async function postChat(signal) {
  for (;;) {
    const res = await fetch('/v1/chat/completions', {
      method: 'POST',
      headers: headers(),
      body: JSON.stringify(requestBody()),
      signal,
    });
    if (res.ok) return res;
    const err = await apiError(res);
    const next = history.findIndex((m, i) => i > 0 && m.role === 'user');
    if (err.code !== 'context_length_exceeded' || next < 0) throw err;
    history.splice(0, next);
    const live = [...ui.messages.querySelectorAll('.message:not(.dropped)')];
    for (const li of live.slice(0, next)) li.classList.add('dropped');
    ui.stats.textContent = 'The oldest messages no longer fit the context and were left out.';
  }
}

function addMessage(role, text = '') {
  ui.empty.hidden = true;
  const li = document.createElement('li');
  li.className = `message ${role}`;
  const who = document.createElement('span');
  who.className = 'role';
  who.textContent = role === 'user' ? 'You' : ui.model.value || 'Model';
  const body = document.createElement('div');
  body.className = 'content';
  body.textContent = text;
  li.append(who, body);
  ui.messages.append(li);
  li.scrollIntoView({ block: 'end' });
  return li;
}

function setBusy(busy) {
  ui.send.disabled = busy;
  ui.stop.disabled = !busy;
  ui.messages.setAttribute('aria-busy', String(busy));
}

/** Yields each server-sent event's data: events end with a blank line, data lines start with "data:". */
async function* sseData(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const events = buffer.split(/\r?\n\r?\n/);
    buffer = events.pop();
    for (const event of events) {
      const data = event
        .split(/\r?\n/)
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).replace(/^ /, ''))
        .join('\n');
      if (data) yield data;
    }
  }
}

function requestBody() {
  const messages = [...history];
  const system = ui.system.value.trim();
  if (system) messages.unshift({ role: 'system', content: system });
  const body = { model: ui.model.value, messages, stream: true, stream_options: { include_usage: true } };
  const t = Number(ui.temperature.value),
    p = Number(ui.topP.value),
    n = Number(ui.maxTokens.value);
  if (ui.temperature.value !== '' && Number.isFinite(t)) body.temperature = t;
  if (ui.topP.value !== '' && Number.isFinite(p)) body.top_p = p;
  if (ui.maxTokens.value !== '' && Number.isInteger(n)) body.max_tokens = n;
  return body;
}

async function send(text) {
  history.push({ role: 'user', content: text });
  addMessage('user', text);
  const li = addMessage('assistant');
  const out = li.querySelector('.content');
  li.dataset.state = 'streaming';
  ui.stats.textContent = '';
  inflight = new AbortController();
  setBusy(true);
  const started = performance.now();
  let first = 0,
    usage = null,
    finish = null;
  try {
    const res = await postChat(inflight.signal);
    for await (const data of sseData(res.body)) {
      if (data === '[DONE]') break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices?.[0];
      if (!choice) continue;
      if (choice.delta?.content) {
        if (!first) first = performance.now();
        out.textContent += choice.delta.content;
        li.scrollIntoView({ block: 'end' });
      }
      if (choice.finish_reason) finish = choice.finish_reason;
    }
    li.dataset.state = 'done';
    history.push({ role: 'assistant', content: out.textContent });
    ui.stats.textContent = [ui.stats.textContent, stats(usage, started, first, finish)].filter(Boolean).join(' ');
  } catch (err) {
    if (inflight.signal.aborted) {
      li.dataset.state = 'stopped';
      if (out.textContent) history.push({ role: 'assistant', content: out.textContent });
      else history.pop();
      ui.stats.textContent = 'Stopped.';
    } else {
      li.dataset.state = 'error';
      li.classList.add('error');
      out.textContent += (out.textContent ? '\n' : '') + err.message;
      li.setAttribute('role', 'alert');
      history.pop(); // the user's turn had no reply: it can be sent again
    }
  } finally {
    inflight = null;
    setBusy(false);
    ui.prompt.focus();
  }
}

function stats(usage, started, first, finish) {
  const parts = [];
  if (usage) parts.push(`${usage.completion_tokens} tokens`);
  if (first) parts.push(`first token ${Math.round(first - started)} ms`);
  const end = performance.now();
  if (usage && first && usage.completion_tokens > 1 && end > first) {
    parts.push(`${Math.round((usage.completion_tokens - 1) / ((end - first) / 1000))} tokens/s`);
  }
  if (finish) parts.push(finish === 'length' ? 'stopped at max tokens' : `finish: ${finish}`);
  return parts.join(' · ');
}

ui.composer.addEventListener('submit', (e) => {
  e.preventDefault();
  const text = ui.prompt.value.trim();
  if (!text || inflight) return;
  ui.prompt.value = '';
  send(text);
});
ui.prompt.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    ui.composer.requestSubmit();
  }
});
$('settings').addEventListener('submit', (e) => e.preventDefault());
ui.stop.addEventListener('click', () => inflight?.abort());
ui.reset.addEventListener('click', () => {
  if (inflight) inflight.abort();
  history = [];
  ui.messages.replaceChildren(ui.empty);
  ui.empty.hidden = false;
  ui.stats.textContent = '';
  ui.prompt.focus();
});
ui.apiKey.addEventListener('change', () => {
  sessionStorage.setItem('kvserve.apiKey', ui.apiKey.value);
  loadModels();
});
ui.model.addEventListener('change', () => setStatus(`Ready: ${ui.model.value}`, 'ok'));

// Settings survive a reload; the key only lives as long as the tab.
for (const name of SETTINGS) {
  const saved = localStorage.getItem(`kvserve.${name}`);
  if (saved !== null) ui[name].value = saved;
  ui[name].addEventListener('change', () => localStorage.setItem(`kvserve.${name}`, ui[name].value));
}
ui.apiKey.value = sessionStorage.getItem('kvserve.apiKey') ?? '';
if (ui.apiKey.value) ui.keyField.hidden = false;
loadModels();
ui.prompt.focus();
