// Playwright driver for the VS Code end-to-end test; run by .ci/vscode-e2e.sh.
//
// Opens the workspace in code-server (real VS Code in headless Chromium) with the ctx
// extension installed and checks, against the real ctx-lsp and the fake model.
// MODE=main (a trusted workspace):
//   1. the extension activates and starts the server (status bar shows the model);
//   2. typing shows inline ghost text, and Tab accepts it into the file;
//   3. the ctx button in the Source Control title bar fills the commit message box;
//   4. "ctx: Explain Selection" shows the answer as a Markdown preview;
//   5. the ctx chat view streams an answer about the selection, and Apply changes the file;
//      Stop ends a streaming answer, keeping what was written; Apply without a selection is
//      shown in the Refactor Preview before it replaces the file;
//   6. after a window reload the chat view shows the restored conversation;
//   7. the server's log lines reach the ctx log at their own level (info is not an error);
//   8. a broken server setting gives a clear notification; fixing it restarts the server.
// MODE=untrusted (VS Code's Restricted Mode, the repository's .ctx/config.toml names another
// backend and a token variable):
//   1. Restricted Mode, and the extension still starts the server;
//   2. the server says what it holds back, and offers no Trust button;
//   3. completions come from the user's own backend;
//   4. "ctx: Trust Workspace Config" refuses, and nothing is trusted;
//   5. the repository's backend received nothing, and the token went nowhere;
//   6. trusting the workspace in VS Code restarts the server, which then asks (Trust / Not
//      now); only after Trust does the repository's backend get a request.
// Screenshots go to $ARTIFACTS; results to $ARTIFACTS/results-$MODE.json. Exit 1 on failure.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const os = require('node:os');
const { chromium } = require('playwright-core');

const CS_URL = process.env.CS_URL;
const WORKSPACE = process.env.WORKSPACE;
const ARTIFACTS = process.env.ARTIFACTS;
const FAKE_URL = process.env.FAKE_URL;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const MODE = process.env.MODE || 'main';
const REPO_FAKE_URL = process.env.REPO_FAKE_URL;
const DEPLOY_TOKEN = process.env.DEPLOY_TOKEN;

const COMPLETION = 'return a * b';
const COMMIT = 'feat(calc): add sub()\n\nSubtract two numbers.';
const EXPLANATION = '`add` returns the **sum** of `a` and `b`.';
const QUESTION = 'add a docstring to add';
const SCM_BUTTON = 'ctx: Write Commit Message from the Staged Changes';
const DOCSTRING = '"""Add two numbers."""';
const CHAT_ANSWER =
  'Here it is, with a docstring:\n\n```python\ndef add(a, b):\n    ' + DOCSTRING + '\n    return a + b\n```\n\n' +
  'The docstring says what the function returns, in one line that editors show on hover.';

const results = { checks: {}, notifications: [], timings: {} };
const t0 = Date.now();
let shot = 0;

function log(...args) {
  console.error(`[e2e ${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...args);
}

async function screenshot(page, name) {
  const file = path.join(ARTIFACTS, `${MODE}-${String(++shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file });
  log('screenshot', file);
  return file;
}

async function fake(pathname, body, base = FAKE_URL) {
  // The fake model's control endpoints (tests/fake_openai.py); retried: a busy CI machine
  // can drop a connection.
  let lastError;
  for (let attempt = 1; attempt <= 4; attempt++) {
    try {
      const res = await fetch(base + pathname, {
        method: body === undefined ? 'GET' : 'POST',
        headers: { 'content-type': 'application/json', connection: 'close' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (!res.ok) {
        throw new Error(`fake server ${pathname}: ${res.status}`);
      }
      return await res.json();
    } catch (error) {
      lastError = error;
      log(`fake server ${pathname} attempt ${attempt}: ${error} ${error.cause || ''}`);
      await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
    }
  }
  throw lastError;
}

async function notifications(page) {
  return page.locator('.notifications-toasts .notification-list-item-message').allInnerTexts();
}

async function runCommand(page, title) {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible', timeout: 10000 });
  await input.fill('>' + title);
  // The row with exactly this title (the first row may be another, fuzzily matching one).
  const exact = new RegExp(`^${title.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  const row = page
    .locator('.quick-input-list .monaco-list-row')
    .filter({ has: page.locator('.label-name', { hasText: exact }) })
    .first();
  await row.waitFor({ state: 'visible', timeout: 10000 });
  await row.click();
}

async function check(name, fn) {
  const start = Date.now();
  try {
    const detail = await fn();
    results.checks[name] = { ok: true, detail };
    log('PASS', name);
  } catch (error) {
    results.checks[name] = { ok: false, error: String(error && error.stack ? error.stack : error) };
    log('FAIL', name, String(error));
  }
  results.timings[name] = (Date.now() - start) / 1000;
  return results.checks[name].ok;
}

async function openFile(page, name, contains) {
  await page.keyboard.press('Control+P');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible' });
  await input.fill(name);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: name }).first().waitFor();
  await page.keyboard.press('Enter');
  await page.locator('.editor-instance .monaco-editor .view-lines', { hasText: contains }).first().waitFor();
}

/** The chat view's page (an iframe in an iframe), once it has loaded. */
async function chatFrame(page, timeout = 30000) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    for (const frame of page.frames()) {
      try {
        if (await frame.$('#question')) {
          return frame;
        }
      } catch {
        // a frame that went away while we looked
      }
    }
    await page.waitForTimeout(250);
  }
  throw new Error('the ctx chat view did not load');
}

async function editorText(page) {
  return (await page.locator('.editor-instance .monaco-editor .view-lines').first().innerText()).replace(/\u00a0/g, ' ');
}

async function waitForFile(file, want, ms = 10000) {
  const deadline = Date.now() + ms;
  let text = '';
  while (Date.now() < deadline) {
    text = fs.readFileSync(file, 'utf8');
    if (text.includes(want)) {
      return text;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${file} does not contain ${JSON.stringify(want)}:\n${text}`);
}

/** The ctx log channel's file(s) under the user-data folder. */
function ctxLogs() {
  const root = path.join(process.env.USER_DATA, 'logs');
  if (!fs.existsSync(root)) {
    return '';
  }
  return fs
    .readdirSync(root, { recursive: true })
    .map(String)
    .filter((p) => /(^|[/\\])(\d+-)?ctx\.log$/.test(p))
    .map((p) => fs.readFileSync(path.join(root, p), 'utf8'))
    .join('\n');
}

async function activation(page) {
  return check('extension activates and starts the server', async () => {
    const item = page.locator('.statusbar-item', { hasText: 'test-model' });
    const failed = page.locator('.notification-list-item-message', { hasText: 'cannot start' });
    await Promise.race([
      item.waitFor({ state: 'visible', timeout: 60000 }),
      failed.first().waitFor({ state: 'visible', timeout: 60000 }).then(async () => {
        throw new Error(await failed.first().innerText());
      }),
    ]);
    return (await item.innerText()).trim();
  });
}

async function mainChecks(page) {
  // 1. Activation: the status bar item shows the model once the server runs.
  const activated = await activation(page);
  await screenshot(page, 'activated');
  if (!activated) {
    return;
  }

  // 2. Inline completion: type the start of a function, wait for the ghost text, Tab.
  await fake('/_fake/reply', { text: COMPLETION });
  await check('ghost text appears and Tab accepts it into the file', async () => {
    await page.keyboard.press('Control+P');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    await input.fill('app.py');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'app.py' }).first().waitFor();
    await page.keyboard.press('Enter');
    const editor = page.locator('.editor-instance .monaco-editor').first();
    await editor.waitFor({ state: 'visible' });
    await page.locator('.monaco-editor .view-lines', { hasText: 'return a + b' }).first().waitFor();
    await editor.locator('.view-lines').click();
    await page.keyboard.press('Control+End');
    // Type like a user; Enter auto-indents the body.
    await page.keyboard.type('\ndef mul(a, b):\n', { delay: 30 });
    const ghost = page.locator('.ghost-text-decoration, .ghost-text-decoration-preview').first();
    await ghost.waitFor({ state: 'visible', timeout: 30000 });
    const ghostText = await page.locator('.ghost-text-decoration, .ghost-text-decoration-preview').allInnerTexts();
    await screenshot(page, 'ghost-text');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Control+S');
    const file = path.join(WORKSPACE, 'app.py');
    const deadline = Date.now() + 10000;
    let text = '';
    while (Date.now() < deadline) {
      text = fs.readFileSync(file, 'utf8');
      if (text.includes(COMPLETION)) {
        break;
      }
      await page.waitForTimeout(200);
    }
    await screenshot(page, 'accepted');
    const expected = 'def mul(a, b):\n    ' + COMPLETION;
    if (!text.includes(expected)) {
      throw new Error(`app.py does not contain ${JSON.stringify(expected)}:\n${text}`);
    }
    return { ghostText, file: text };
  });

  // 3. Commit message into the Source Control input box, from ctx's own title-bar button
  //    (its own title and icon, not another extension's sparkle).
  // The model takes 2 s to answer: the status bar item spins meanwhile.
  await fake('/_fake/enqueue', { kind: 'reply', text: COMMIT, delay_s: 2 });
  await check('the ctx Source Control button fills the commit message box', async () => {
    await page.keyboard.press('Control+Shift+G');
    // The git extension has found the repository when the staged file is listed.
    await page.locator('.scm-view .monaco-list-row', { hasText: 'calc.py' }).first().waitFor({ timeout: 30000 });
    const button = page.locator('.scm-view, .part.sidebar').locator(`a.action-label[aria-label="${SCM_BUTTON}"]`).first();
    await button.waitFor({ state: 'visible', timeout: 10000 });
    // The icon's style rule may come a moment after the button.
    let icon = '';
    for (let i = 0; i < 25 && !/ctx-(light|dark)\.svg/.test(icon); i++) {
      icon = await button.evaluate((el) => `${getComputedStyle(el).backgroundImage} ${getComputedStyle(el).maskImage}`);
      await page.waitForTimeout(200);
    }
    await button.click();
    const spinner = page.locator('.statusbar-item', { hasText: 'test-model' }).locator('.codicon-modifier-spin');
    await spinner.first().waitFor({ state: 'visible', timeout: 5000 });
    await screenshot(page, 'spinner');
    const box = page.locator('.scm-editor .view-lines').first();
    const want = COMMIT.split('\n')[0];
    await page.waitForFunction(
      ([sel, text]) => {
        const el = document.querySelector(sel);
        return !!el && el.innerText.replace(/\u00a0/g, ' ').includes(text);
      },
      ['.scm-editor .view-lines', want],
      { timeout: 30000 },
    );
    await screenshot(page, 'commit-message');
    const value = (await box.innerText()).replace(/\u00a0/g, ' ');
    const requests = await fake('/_fake/requests');
    const prompt = JSON.stringify(requests[requests.length - 1].body.messages);
    if (!prompt.includes('calc.py')) {
      throw new Error('the commit-message prompt does not mention the staged calc.py');
    }
    if (!/ctx-(light|dark)\.svg/.test(icon)) {
      throw new Error(`the Source Control button does not show ctx's own icon: ${icon}`);
    }
    return { inputBox: value, icon };
  });

  // 4. Explain Selection: the answer opens as a rendered Markdown preview beside the code.
  await fake('/_fake/reply', { text: EXPLANATION });
  await check('Explain Selection shows the Markdown answer', async () => {
    await page.keyboard.press('Control+P');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible' });
    await input.fill('app.py');
    await page.locator('.quick-input-list .monaco-list-row', { hasText: 'app.py' }).first().waitFor();
    await page.keyboard.press('Enter');
    await page.locator('.editor-instance .monaco-editor .view-lines').first().click();
    await page.keyboard.press('Control+Home');
    await page.keyboard.press('Shift+ArrowDown');
    await page.keyboard.press('Shift+End');
    await runCommand(page, 'ctx: Explain Selection');
    const tab = page.locator('.tabs-container .tab', { hasText: /Preview .*explain/ }).first();
    await tab.waitFor({ state: 'visible', timeout: 30000 });
    // The rendered Markdown lives in the preview's webview (an iframe in an iframe).
    const rendered = page
      .frameLocator('iframe.webview.ready')
      .frameLocator('#active-frame')
      .locator('strong', { hasText: 'sum' });
    await rendered.first().waitFor({ state: 'visible', timeout: 20000 });
    const previews = await page.locator('.tabs-container .tab', { hasText: 'Preview' }).count();
    if (previews !== 1) {
      throw new Error(`expected one preview tab, found ${previews}`);
    }
    await screenshot(page, 'explain-preview');
    const answers = fs
      .readdirSync(path.join(WORKSPACE, '.ctx'), { recursive: true })
      .filter((p) => /answers\/.*explain.*\.md$/.test(String(p)));
    if (!answers.length) {
      throw new Error('no explanation saved under .ctx/');
    }
    return { tab: (await tab.innerText()).trim(), saved: answers.map(String) };
  });

  // 5. Chat: the view streams the answer to a question about the selection; Apply writes
  //    its code block into the file through the server (ctx.applyCode → workspace/applyEdit).
  await fake('/_fake/enqueue', { kind: 'reply', text: CHAT_ANSWER, chunk_delay_s: 0.12 });
  const chatted = await check('the chat view streams an answer and Apply changes the file', async () => {
    await runCommand(page, 'View: Close All Editors');
    await openFile(page, 'app.py', 'return a + b');
    await page.locator('.editor-instance .monaco-editor .view-lines').first().click();
    await page.keyboard.press('Control+Home');
    await page.keyboard.press('Shift+ArrowDown');
    await page.keyboard.press('Shift+End');
    await runCommand(page, 'ctx: Open Chat');
    const chat = await chatFrame(page);
    const context = chat.locator('#context');
    await context.filter({ hasText: 'app.py, lines 1–2' }).waitFor({ timeout: 10000 });
    await chat.locator('#question').fill(QUESTION);
    await chat.locator('#question').press('Enter');
    // While the model writes: part of the answer is shown, the rest not yet.
    const streaming = chat.locator('.body.streaming');
    await streaming.filter({ hasText: 'docstring' }).waitFor({ timeout: 20000 });
    const partial = (await streaming.innerText()).trim();
    await screenshot(page, 'chat-streaming');
    if (partial.includes('editors show on hover')) {
      throw new Error(`the answer was not streamed: the whole of it was there at once: ${partial}`);
    }
    const done = chat.locator('.turn .body:not(.streaming)', { hasText: 'editors show on hover' }).last();
    await done.waitFor({ timeout: 30000 });
    await screenshot(page, 'chat-answer');
    const requests = await fake('/_fake/requests');
    const prompt = JSON.stringify(requests[requests.length - 1].body.messages);
    if (!prompt.includes(QUESTION) || !prompt.includes('return a + b')) {
      throw new Error('the chat prompt lacks the question or the selected code');
    }
    await done.locator('button.apply').first().click();
    await chat.locator('.status.ok', { hasText: 'Applied' }).waitFor({ timeout: 15000 });
    await page.locator('.editor-instance .monaco-editor .view-lines', { hasText: 'Add two numbers.' }).first().waitFor({ timeout: 10000 });
    await screenshot(page, 'chat-applied');
    await page.locator('.editor-instance .monaco-editor .view-lines').first().click();
    await page.keyboard.press('Control+S');
    const text = await waitForFile(path.join(WORKSPACE, 'app.py'), 'Add two numbers.');
    if ((text.match(/def add\(/g) || []).length !== 1 || !text.includes('def mul(')) {
      throw new Error(`Apply did not replace the selected function:\n${text}`);
    }
    return { partial, file: text, status: await chat.locator('.status.ok').first().innerText() };
  });

  // 5b. Stop: the answer ends where it was, marked as stopped, and the model's HTTP request is
  //     dropped ($/cancelRequest reached the server).
  const SLOW = Array.from({ length: 40 }, (_, i) => `word${i + 1}`).join(' ');
  if (chatted) {
    await fake('/_fake/enqueue', { kind: 'reply', text: SLOW, chunk_delay_s: 0.3 });
    await check('Stop ends a streaming answer and keeps what was written', async () => {
      const before = (await fake('/_fake/stats')).aborted;
      const chat = await chatFrame(page);
      await chat.locator('#question').fill('count slowly');
      await chat.locator('#question').press('Enter');
      await chat.locator('.body.streaming', { hasText: 'word3' }).waitFor({ timeout: 20000 });
      await chat.locator('#stop').click();
      const last = chat.locator('.turn').last();
      await last.locator('.cut').waitFor({ timeout: 15000 });
      await chat.locator('#stop').waitFor({ state: 'hidden', timeout: 5000 });
      const text = (await last.locator('.body').innerText()).trim();
      await screenshot(page, 'chat-stopped');
      if (text.includes('word40')) {
        throw new Error(`the answer was not stopped: ${text}`);
      }
      let aborted = before;
      const deadline = Date.now() + 10000;
      while (Date.now() < deadline && aborted <= before) {
        await page.waitForTimeout(300);
        aborted = (await fake('/_fake/stats')).aborted;
      }
      if (aborted <= before) {
        throw new Error('the model request went on after Stop');
      }
      return { text, aborted: aborted - before };
    });
  }

  // 5c. Apply with no selection would replace the whole file: VS Code's Refactor Preview shows
  //     the change, and the file changes only once the user applies it there.
  const WHOLE = 'def add(a, b):\n    return a + b\n\n\ndef neg(a):\n    return -a\n';
  if (chatted) {
    await fake('/_fake/enqueue', { kind: 'reply', text: 'The file, rewritten:\n\n```python\n' + WHOLE + '```\n' });
    await check('Apply without a selection is previewed before it replaces the file', async () => {
      await page.locator('.editor-instance .monaco-editor .view-lines').first().click();
      await page.keyboard.press('Control+End');
      const chat = await chatFrame(page);
      await chat.locator('#context').filter({ hasText: /Context: app\.py$/ }).waitFor({ timeout: 10000 });
      await chat.locator('#question').fill('rewrite the file with a neg function');
      await chat.locator('#question').press('Enter');
      const done = chat.locator('.turn .body:not(.streaming)', { hasText: 'rewritten' }).last();
      await done.waitFor({ timeout: 30000 });
      await done.locator('button.apply').first().click();
      const preview = page.locator('.part.panel, .part.auxiliarybar').filter({ hasText: 'neg' }).first();
      const applyButton = page.locator('.monaco-button', { hasText: /^\s*Apply\s*$/ }).first();
      await applyButton.waitFor({ state: 'visible', timeout: 15000 });
      await screenshot(page, 'chat-preview');
      if ((await editorText(page)).includes('def neg')) {
        throw new Error('the whole-file edit landed before the user confirmed it');
      }
      // An edit that needs confirmation starts unticked: tick the file, then Apply.
      await page.locator('.part.panel .monaco-checkbox, .part.panel .monaco-custom-toggle').first().click();
      await applyButton.click();
      await page.locator('.editor-instance .monaco-editor .view-lines', { hasText: 'def neg(a):' }).first().waitFor({ timeout: 10000 });
      await chat.locator('.status.ok', { hasText: 'Applied' }).last().waitFor({ timeout: 10000 });
      await screenshot(page, 'chat-preview-applied');
      const text = await editorText(page);
      if (text.includes('def mul(')) {
        throw new Error(`the file was not replaced:\n${text}`);
      }
      return { previewShown: await preview.count(), editor: text };
    });
  }

  // 6. Reload the window: a new extension host and a new server; the view starts from the
  //    conversation kept in .ctx/.
  if (chatted) {
    await check('after a reload the chat view shows the restored conversation', async () => {
      await page.reload();
      await page.locator('.monaco-workbench').waitFor({ timeout: 60000 });
      await page.locator('.statusbar-item', { hasText: 'test-model' }).waitFor({ timeout: 60000 });
      await runCommand(page, 'ctx: Open Chat');
      const chat = await chatFrame(page);
      const turn = chat.locator('.restored-turn', { hasText: QUESTION });
      await turn.waitFor({ timeout: 20000 });
      await turn.locator('.body', { hasText: 'editors show on hover' }).waitFor({ timeout: 5000 });
      const note = (await chat.locator('.restored').innerText()).trim();
      await screenshot(page, 'chat-restored');
      return { note };
    });
  }

  // 7. The server's log records at their own level: INFO lines are info, not errors.
  await check("the server's log lines keep their level in the ctx log", async () => {
    let logs = '';
    const deadline = Date.now() + 15000;
    while (Date.now() < deadline) {
      logs = ctxLogs();
      if (/\[info\] ctx_lsp[\w.]*: /.test(logs)) {
        break;
      }
      await page.waitForTimeout(500);
    }
    const info = logs.split('\n').filter((l) => /\[info\] ctx_lsp[\w.]*: /.test(l));
    const misfiled = logs.split('\n').filter((l) => /\[error\].*\b(DEBUG|INFO|WARNING) [\w.]+: /.test(l));
    if (!info.length) {
      throw new Error(`no server INFO line at info level in the ctx log:\n${logs.slice(-2000)}`);
    }
    if (misfiled.length) {
      throw new Error(`server lines logged as errors:\n${misfiled.slice(0, 5).join('\n')}`);
    }
    return { info: info.slice(0, 3) };
  });

  // 8. A server that cannot start: changing ctx.server.python restarts the server, and the
  //    failure is a notification that says what to fix. Restoring the setting recovers.
  await check('a broken server setting is reported, and fixing it restarts the server', async () => {
    const machine = path.join(process.env.USER_DATA, 'Machine', 'settings.json');
    const good = fs.readFileSync(machine, 'utf8');
    fs.writeFileSync(machine, JSON.stringify({ 'ctx.server.python': '/nonexistent/python3' }));
    const failed = page.locator('.notification-list-item-message', { hasText: 'cannot start' }).first();
    await failed.waitFor({ state: 'visible', timeout: 30000 });
    const message = (await failed.innerText()).trim();
    await page.locator('.statusbar-item', { hasText: /^\s*ctx\s*$/ }).first().waitFor({ timeout: 10000 });
    await screenshot(page, 'cannot-start');
    if (!message.includes('/nonexistent/python3') || !message.includes('ctx.server.path')) {
      throw new Error(`unhelpful message: ${message}`);
    }
    fs.writeFileSync(machine, good);
    await page.locator('.statusbar-item', { hasText: 'test-model' }).first().waitFor({ timeout: 30000 });
    return { message };
  });
}

async function untrustedChecks(page) {
  await fake('/_fake/reply', { text: COMPLETION });
  const activated = await check('Restricted Mode, and the extension starts the server', async () => {
    await page.locator('.statusbar-item', { hasText: 'Restricted Mode' }).first().waitFor({ timeout: 30000 });
    const item = page.locator('.statusbar-item', { hasText: 'test-model' });
    await item.waitFor({ state: 'visible', timeout: 60000 });
    return (await item.innerText()).trim();
  });
  await screenshot(page, 'restricted');
  if (!activated) {
    return;
  }

  await check('the server says what it holds back and offers no Trust button', async () => {
    const held = page.locator('.notifications-toasts .notification-list-item', { hasText: 'held back' }).first();
    await held.waitFor({ state: 'visible', timeout: 30000 });
    const message = (await held.locator('.notification-list-item-message').innerText()).trim();
    const buttons = await page.locator('.notifications-toasts .notification-list-item .monaco-button').allInnerTexts();
    await screenshot(page, 'held-back');
    if (!message.includes('baseUrl') || !message.includes('apiKeyEnv')) {
      throw new Error(`the notice does not name the held-back keys: ${message}`);
    }
    if (buttons.some((b) => b.trim() === 'Trust')) {
      throw new Error(`a Trust button was offered in an untrusted workspace: ${buttons}`);
    }
    return { message, buttons };
  });

  await check("completions come from the user's own backend", async () => {
    await openFile(page, 'app.py', 'return a + b');
    await page.locator('.editor-instance .monaco-editor .view-lines').first().click();
    await page.keyboard.press('Control+End');
    await page.keyboard.type('\ndef mul(a, b):\n', { delay: 30 });
    const ghost = page.locator('.ghost-text-decoration, .ghost-text-decoration-preview').first();
    await ghost.waitFor({ state: 'visible', timeout: 30000 });
    await screenshot(page, 'ghost-text');
    const mine = await fake('/_fake/requests');
    if (!mine.some((r) => r.path === '/v1/chat/completions')) {
      throw new Error("the user's backend got no completion request");
    }
    return { ghost: await ghost.innerText(), userRequests: mine.length };
  });

  await check('"ctx: Trust Workspace Config" refuses, and nothing is trusted', async () => {
    await runCommand(page, 'ctx: Trust Workspace Config');
    const refused = page.locator('.notification-list-item-message', { hasText: 'does not trust this workspace' }).first();
    await refused.waitFor({ state: 'visible', timeout: 15000 });
    await screenshot(page, 'trust-refused');
    const trustFile = process.env.CTX_LSP_TRUST_FILE;
    const stored = trustFile && fs.existsSync(trustFile) ? fs.readFileSync(trustFile, 'utf8') : '';
    if (stored.includes(WORKSPACE)) {
      throw new Error(`the workspace was trusted: ${stored}`);
    }
    return { message: (await refused.innerText()).trim(), trustFile: stored || '(none)' };
  });

  await check("the repository's backend received nothing and the token went nowhere", async () => {
    // One more model call after the refusal, then look at both backends.
    await page.keyboard.type('\n', { delay: 30 });
    await page.waitForTimeout(1500);
    const theirs = await fake('/_fake/requests', undefined, REPO_FAKE_URL);
    const mine = await fake('/_fake/requests');
    if (theirs.length) {
      throw new Error(`the repository's backend got ${theirs.length} request(s): ${JSON.stringify(theirs[0]).slice(0, 500)}`);
    }
    const leaked = [JSON.stringify(mine), ctxFiles()].filter((t) => t.includes(DEPLOY_TOKEN));
    if (leaked.length) {
      throw new Error('the deploy token appears in a request or in .ctx/');
    }
    return { repositoryRequests: 0, userRequests: mine.length };
  });

  // 6. The user trusts the workspace in VS Code: the server restarts, now asks about the
  //    repository's file, and only after "Trust" does the repository's backend get a request.
  await check("trusting in VS Code restarts the server, which asks; only then the repository's backend is used", async () => {
    await runCommand(page, 'Workspaces: Manage Workspace Trust');
    const trustButton = page.locator('.workspace-trust-editor .monaco-button', { hasText: /^\s*Trust\s*$/ }).first();
    await trustButton.waitFor({ state: 'visible', timeout: 15000 });
    await screenshot(page, 'trust-editor');
    await trustButton.click();
    await page.locator('.statusbar-item', { hasText: 'Restricted Mode' }).first().waitFor({ state: 'hidden', timeout: 15000 });
    const asked = page.locator('.notifications-toasts .notification-list-item', { hasText: 'held back until you trust' }).filter({
      has: page.locator('.monaco-button', { hasText: /^\s*Trust\s*$/ }),
    });
    await asked.first().waitFor({ state: 'visible', timeout: 30000 });
    const buttons = await asked.first().locator('.monaco-button').allInnerTexts();
    await screenshot(page, 'asked-to-trust');
    if ((await fake('/_fake/requests', undefined, REPO_FAKE_URL)).length) {
      throw new Error("the repository's backend got a request before the user trusted its file");
    }
    await fake('/_fake/reply', { text: 'return "from the repository"' }, REPO_FAKE_URL);
    await asked.first().locator('.monaco-button', { hasText: /^\s*Trust\s*$/ }).click();
    await page.locator('.notification-list-item-message', { hasText: 'trusted' }).first().waitFor({ timeout: 15000 });
    // Back to app.py (the trust editor is a modal one over it), and a new function to complete.
    await page.locator('a.action-label[aria-label^="Close Modal Editor"]').first().click();
    await page.locator('.workspace-trust-editor').waitFor({ state: 'hidden', timeout: 10000 });
    await page.locator('.tabs-container .tab', { hasText: 'app.py' }).first().click();
    await page.locator('.editor-instance .monaco-editor .view-lines').first().click();
    await page.keyboard.press('Control+End');
    await page.keyboard.type('\ndef div(a, b):\n', { delay: 30 });
    let theirs = [];
    const deadline = Date.now() + 30000;
    while (Date.now() < deadline && !theirs.length) {
      await page.waitForTimeout(500);
      theirs = (await fake('/_fake/requests', undefined, REPO_FAKE_URL)).filter((r) => r.path === '/v1/chat/completions');
    }
    await screenshot(page, 'trusted');
    if (!theirs.length) {
      throw new Error("after trusting, the repository's backend still got no request");
    }
    const stored = fs.existsSync(process.env.CTX_LSP_TRUST_FILE) ? fs.readFileSync(process.env.CTX_LSP_TRUST_FILE, 'utf8') : '';
    if (!stored.includes(path.basename(WORKSPACE))) {
      throw new Error(`the trust file does not name the workspace: ${stored}`);
    }
    return { buttons, repositoryRequests: theirs.length };
  });
}

/** Everything under the workspace's .ctx/, as one string. */
function ctxFiles() {
  const root = path.join(WORKSPACE, '.ctx');
  return fs
    .readdirSync(root, { recursive: true })
    .map((p) => path.join(root, String(p)))
    .filter((p) => fs.statSync(p).isFile())
    .map((p) => fs.readFileSync(p, 'utf8'))
    .join('\n');
}

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'ctx-e2e-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on('pageerror', (err) => log('page error:', String(err)));
  try {
    await page.goto(`${CS_URL}/?folder=${encodeURIComponent(WORKSPACE)}`);
    await page.locator('.monaco-workbench').waitFor({ timeout: 60000 });
    await screenshot(page, 'workbench');
    await (MODE === 'untrusted' ? untrustedChecks(page) : mainChecks(page));
  } catch (error) {
    results.error = String(error && error.stack ? error.stack : error) + (error && error.cause ? ' (cause: ' + String(error.cause) + ')' : '');
    log('error:', results.error);
  } finally {
    try {
      results.notifications = await notifications(page);
      await screenshot(page, 'final');
    } catch (error) {
      log('final screenshot failed:', String(error));
    }
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
    results.seconds = (Date.now() - t0) / 1000;
    fs.writeFileSync(path.join(ARTIFACTS, `results-${MODE}.json`), JSON.stringify(results, null, 2));
  }
}

main()
  .then(() => {
    const checks = Object.entries(results.checks);
    const failed = checks.filter(([, r]) => !r.ok).map(([name]) => name);
    if (results.error || failed.length || checks.length < (MODE === 'untrusted' ? 6 : 10)) {
      console.error(`vscode e2e (${MODE}) FAILED: ${failed.join('; ') || results.error || 'checks missing'}`);
      if (results.notifications.length) {
        console.error('notifications:', results.notifications);
      }
      process.exit(1);
    }
    console.error(`vscode e2e (${MODE}) passed: ${checks.length} checks in ${results.seconds}s`);
  })
  .catch((error) => {
    console.error(error);
    process.exit(1);
  });
