// Playwright driver for the VS Code end-to-end test; run by .ci/vscode-e2e.sh.
//
// Opens the workspace in code-server (real VS Code in headless Chromium) with the ctx
// extension installed and checks, against the real ctx-lsp and the fake model:
//   1. the extension activates and starts the server (status bar shows the model);
//   2. typing shows inline ghost text, and Tab accepts it into the file;
//   3. "ctx: Generate Commit Message" fills the Source Control input box;
//   4. "ctx: Explain Selection" shows the answer as a Markdown preview;
//   5. a broken server setting gives a clear notification; fixing it restarts the server.
// Screenshots go to $ARTIFACTS; results to $ARTIFACTS/results.json. Exit 1 on failure.
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

const COMPLETION = 'return a * b';
const COMMIT = 'feat(calc): add sub()\n\nSubtract two numbers.';
const EXPLANATION = '`add` returns the **sum** of `a` and `b`.';

const results = { checks: {}, notifications: [], timings: {} };
const t0 = Date.now();
let shot = 0;

function log(...args) {
  console.error(`[e2e ${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...args);
}

async function screenshot(page, name) {
  const file = path.join(ARTIFACTS, `${String(++shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file });
  log('screenshot', file);
  return file;
}

async function fake(pathname, body) {
  // The fake model's control endpoints (tests/fake_openai.py); retried: a busy CI machine
  // can drop a connection.
  let lastError;
  for (let attempt = 1; attempt <= 4; attempt++) {
    try {
      const res = await fetch(FAKE_URL + pathname, {
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
  const row = page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
  await row.waitFor({ state: 'visible', timeout: 10000 });
  await page.keyboard.press('Enter');
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

    // 1. Activation: the status bar item shows the model once the server runs.
    const activated = await check('extension activates and starts the server', async () => {
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

    // 3. Commit message into the Source Control input box.
    // The model takes 2 s to answer: the status bar item spins meanwhile.
    await fake('/_fake/enqueue', { kind: 'reply', text: COMMIT, delay_s: 2 });
    await check('Generate Commit Message fills the Source Control input', async () => {
      await page.keyboard.press('Control+Shift+G');
      // The git extension has found the repository when the staged file is listed.
      await page.locator('.scm-view .monaco-list-row', { hasText: 'calc.py' }).first().waitFor({ timeout: 30000 });
      await runCommand(page, 'ctx: Generate Commit Message');
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
      return { inputBox: value };
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

    // 5. A server that cannot start: changing ctx.server.python restarts the server, and the
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
    fs.writeFileSync(path.join(ARTIFACTS, 'results.json'), JSON.stringify(results, null, 2));
  }
}

main()
  .then(() => {
    const checks = Object.entries(results.checks);
    const failed = checks.filter(([, r]) => !r.ok).map(([name]) => name);
    if (results.error || failed.length || checks.length < 5) {
      console.error(`vscode e2e FAILED: ${failed.join('; ') || results.error || 'checks missing'}`);
      if (results.notifications.length) {
        console.error('notifications:', results.notifications);
      }
      process.exit(1);
    }
    console.error(`vscode e2e passed: ${checks.length} checks in ${results.seconds}s`);
  })
  .catch((error) => {
    console.error(error);
    process.exit(1);
  });
