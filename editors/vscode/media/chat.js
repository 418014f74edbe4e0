// The chat view's page: shows the conversation, streams the answer being written, and sends
// questions, Stop, Apply and Insert to the extension (src/chat.ts).
(function () {
  const vscode = acquireVsCodeApi();
  const log = /** @type {HTMLElement} */ (document.getElementById('log'));
  const form = /** @type {HTMLFormElement} */ (document.getElementById('ask'));
  const input = /** @type {HTMLTextAreaElement} */ (document.getElementById('question'));
  const send = /** @type {HTMLButtonElement} */ (document.getElementById('send'));
  const stop = /** @type {HTMLButtonElement} */ (document.getElementById('stop'));
  const context = /** @type {HTMLElement} */ (document.getElementById('context'));

  /** The answer being written: its element and text so far. */
  let current = /** @type {{el: HTMLElement, text: string} | null} */ (null);

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  /** Split Markdown into text and fenced code blocks, counted the way the server counts them. */
  function parts(text) {
    const out = [];
    const lines = text.split('\n');
    let prose = [];
    let code = null;
    for (const line of lines) {
      if (code) {
        const close = line.match(/^\s*(`{3,}|~{3,})\s*$/);
        if (close && close[1][0] === code.fence[0] && close[1].length >= code.fence.length) {
          out.push({ kind: 'code', lang: code.lang, text: code.lines.join('\n'), closed: true });
          code = null;
        } else {
          code.lines.push(line);
        }
        continue;
      }
      const open = line.match(/^\s*(`{3,}|~{3,})\s*([\w+#.-]*)/);
      if (open) {
        if (prose.length) out.push({ kind: 'prose', text: prose.join('\n') });
        prose = [];
        code = { fence: open[1], lang: open[2], lines: [] };
      } else {
        prose.push(line);
      }
    }
    if (code) out.push({ kind: 'code', lang: code.lang, text: code.lines.join('\n'), closed: false });
    if (prose.length) out.push({ kind: 'prose', text: prose.join('\n') });
    return out;
  }

  /** Inline Markdown: `code` and **bold**, everything else as text. */
  function inline(parent, text) {
    const re = /(`[^`\n]+`|\*\*[^*\n]+\*\*)/g;
    let last = 0;
    for (const m of text.matchAll(re)) {
      if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
      const token = m[0];
      parent.appendChild(token.startsWith('`') ? el('code', '', token.slice(1, -1)) : el('strong', '', token.slice(2, -2)));
      last = m.index + token.length;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  /** Render an answer; code blocks get Apply / Insert / Copy once the answer has a historyId. */
  function render(target, text, historyId) {
    target.replaceChildren();
    let block = 0;
    for (const part of parts(text)) {
      if (part.kind === 'prose') {
        for (const para of part.text.split(/\n\s*\n/)) {
          if (!para.trim()) continue;
          const p = el('p');
          inline(p, para.trim());
          target.appendChild(p);
        }
        continue;
      }
      const index = block++;
      const wrap = el('div', 'code');
      const pre = el('pre');
      pre.appendChild(el('code', part.lang ? `language-${part.lang}` : '', part.text));
      wrap.appendChild(pre);
      const bar = el('div', 'code-actions');
      const apply = el('button', 'apply', 'Apply');
      apply.title = 'Apply this code to the file the question was about (through the server)';
      apply.disabled = !historyId;
      apply.addEventListener('click', () => {
        apply.disabled = true;
        vscode.postMessage({ type: 'apply', historyId, block: index });
      });
      const insert = el('button', 'insert', 'Insert');
      insert.title = 'Insert at the cursor of the editor';
      insert.disabled = !part.closed;
      insert.addEventListener('click', () => vscode.postMessage({ type: 'insert', code: part.text + '\n' }));
      const copy = el('button', 'copy', 'Copy');
      copy.addEventListener('click', () => void navigator.clipboard.writeText(part.text));
      const status = el('span', 'status');
      status.dataset.block = String(index);
      bar.append(apply, insert, copy, status);
      wrap.appendChild(bar);
      target.appendChild(wrap);
    }
  }

  function turn(question, contextLabel) {
    const t = el('div', 'turn');
    const q = el('div', 'question');
    q.appendChild(el('span', 'who', 'You'));
    q.appendChild(el('div', 'text', question));
    if (contextLabel) q.appendChild(el('div', 'context', contextLabel));
    const a = el('div', 'answer');
    a.appendChild(el('span', 'who', 'ctx'));
    const body = el('div', 'body');
    a.appendChild(body);
    t.append(q, a);
    log.appendChild(t);
    return { turn: t, body };
  }

  function scroll() {
    log.scrollTop = log.scrollHeight;
  }

  function busy(on) {
    send.disabled = on;
    stop.hidden = !on;
  }

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const question = input.value.trim();
    if (!question) return;
    input.value = '';
    vscode.postMessage({ type: 'ask', question });
  });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  stop.addEventListener('click', () => vscode.postMessage({ type: 'stop' }));

  window.addEventListener('message', (event) => {
    const m = event.data;
    switch (m.type) {
      case 'context':
        context.textContent = `Context: ${m.label}`;
        break;
      case 'history': {
        log.replaceChildren();
        if (m.error) log.appendChild(el('div', 'error', m.error));
        if (m.turns.length) log.appendChild(el('div', 'restored', `Restored conversation: ${m.turns.length} earlier turn${m.turns.length === 1 ? '' : 's'}`));
        for (const t of m.turns) {
          const { turn: tEl, body } = turn(t.question);
          tEl.dataset.historyId = t.historyId;
          tEl.classList.add('restored-turn');
          render(body, t.answer, t.historyId);
          if (t.cut) body.appendChild(el('div', 'cut', '(stopped)'));
        }
        if (current) log.appendChild(current.el.closest('.turn'));
        scroll();
        break;
      }
      case 'start': {
        const { body } = turn(m.question, m.context);
        body.classList.add('streaming');
        current = { el: body, text: '' };
        busy(true);
        scroll();
        break;
      }
      case 'delta':
        if (current) {
          current.text += m.text;
          render(current.el, current.text, undefined);
          scroll();
        }
        break;
      case 'done':
        if (current) {
          current.el.classList.remove('streaming');
          render(current.el, m.text, m.historyId);
          const t = current.el.closest('.turn');
          if (t && m.historyId) t.dataset.historyId = m.historyId;
          if (m.cut) current.el.appendChild(el('div', 'cut', '(stopped)'));
        }
        current = null;
        busy(false);
        scroll();
        break;
      case 'error':
        if (current) {
          current.el.classList.remove('streaming');
          if (m.text) render(current.el, m.text, undefined);
          current.el.appendChild(el('div', 'error', m.message));
          current = null;
          busy(false);
        } else {
          log.appendChild(el('div', 'error', m.message));
        }
        scroll();
        break;
      case 'applied': {
        const t = log.querySelector(`.turn[data-history-id="${CSS.escape(m.historyId)}"]`);
        const status = t && t.querySelector(`.status[data-block="${m.block}"]`);
        if (status) {
          status.textContent = m.text;
          status.className = m.ok ? 'status ok' : 'status failed';
        }
        const button = status && status.parentElement && status.parentElement.querySelector('.apply');
        if (button && !m.ok) button.disabled = false;
        break;
      }
    }
  });

  vscode.postMessage({ type: 'ready' });
})();
