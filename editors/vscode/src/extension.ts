// ctx for VS Code: starts the ctx-lsp language server and adds its commands.
//
// Inline completions, completion items and code actions come straight from the server through
// vscode-languageclient (LSP 3.18 inline completion); this file adds the palette commands, the
// status bar item and the server lifecycle. The chat view is in chat.ts, the server's log
// levels in logs.ts, workspace trust in trust.ts.
import * as readline from 'node:readline';
import type { Readable } from 'node:stream';
import * as vscode from 'vscode';
import {
  CloseAction,
  CloseHandlerResult,
  DidChangeConfigurationNotification,
  ErrorAction,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  RevealOutputChannelOn,
  ServerOptions,
  State,
} from 'vscode-languageclient/node';
import { ChatView } from './chat';
import { StderrLevels } from './logs';
import { resolveServer, ServerCommand, ServerNotFound } from './server';
import { ServerSettings } from './settings';
import { trustWorkspace } from './trust';

/** Every server command returns an object with at least `text`. */
export interface CommandResult {
  text: string;
  [key: string]: unknown;
}

/** Server commands whose answer is long Markdown worth showing when run from a code action. */
const SHOWN_RESULTS = new Set(['ctx.explain', 'ctx.generateTests']);

let controller: Controller | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<Controller> {
  controller = new Controller(context);
  context.subscriptions.push(controller);
  await controller.start();
  return controller;
}

export async function deactivate(): Promise<void> {
  await controller?.stop();
  controller = undefined;
}

class Busy {
  private count = 0;
  constructor(private readonly onChange: (busy: boolean) => void) {}

  async run<T>(work: () => Thenable<T> | Promise<T>): Promise<T> {
    if (this.count++ === 0) {
      this.onChange(true);
    }
    try {
      return await work();
    } finally {
      if (--this.count === 0) {
        this.onChange(false);
      }
    }
  }
}

/** Read-only Markdown documents for answers: `ctx-lsp:/Explain.md?1`. */
class AnswerDocuments implements vscode.TextDocumentContentProvider {
  static readonly scheme = 'ctx-lsp';
  private readonly texts = new Map<string, string>();
  private counter = 0;
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;

  add(title: string, text: string): vscode.Uri {
    const uri = vscode.Uri.from({
      scheme: AnswerDocuments.scheme,
      path: `/${title.replace(/[^\w .-]+/g, '_')}.md`,
      query: String(++this.counter),
    });
    this.texts.set(uri.toString(), text);
    return uri;
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? '';
  }

  dispose(): void {
    this.changed.dispose();
  }
}

export class Controller implements vscode.Disposable {
  client: LanguageClient | undefined;
  serverCommand: ServerCommand | undefined;
  readonly output: vscode.LogOutputChannel;
  private readonly status: vscode.StatusBarItem;
  private readonly settings: ServerSettings;
  private readonly answers = new AnswerDocuments();
  private readonly busy: Busy;
  private readonly disposables: vscode.Disposable[] = [];
  private busyNow = false;
  private serverModel: string | undefined;
  private startFailure: string | undefined;
  /** The server's last stderr lines, quoted when it fails to start. */
  private stderrTail: string[] = [];
  private restarts: number[] = [];
  /** The latest start (or restart), which commands wait for. */
  private starting: Promise<void> = Promise.resolve();
  /** Restarts run one at a time; one asked for while another waits to run joins it. */
  private restartQueue: Promise<void> = Promise.resolve();
  private restartWaiting: Promise<void> | undefined;
  private restartTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly chat: ChatView;

  constructor(context: vscode.ExtensionContext) {
    this.output = vscode.window.createOutputChannel('ctx', { log: true });
    this.status = vscode.window.createStatusBarItem('ctx.status', vscode.StatusBarAlignment.Right, 100);
    this.status.name = 'ctx';
    this.status.command = 'ctxLsp.showContext';
    this.settings = new ServerSettings(
      context.extension.packageJSON as ConstructorParameters<typeof ServerSettings>[0],
    );
    this.busy = new Busy((busy) => {
      this.busyNow = busy;
      this.updateStatus();
    });
    this.chat = new ChatView(context.extensionUri, {
      running: () => this.running(),
      busy: (work) => this.busy.run(work),
      log: (line) => this.output.appendLine(line),
    });
    this.disposables.push(
      this.output,
      this.status,
      this.answers,
      vscode.workspace.registerTextDocumentContentProvider(AnswerDocuments.scheme, this.answers),
      this.chat,
      vscode.window.registerWebviewViewProvider(ChatView.id, this.chat, {
        webviewOptions: { retainContextWhenHidden: true },
      }),
      vscode.commands.registerCommand('ctxLsp.commitMessage', (arg?: unknown) => this.commitMessage(arg)),
      vscode.commands.registerCommand('ctxLsp.commitMessageScm', (arg?: unknown) => this.commitMessage(arg)),
      vscode.commands.registerCommand('ctxLsp.openChat', () => this.chat.open()),
      vscode.commands.registerCommand('ctxLsp.askSelection', () => this.askSelection()),
      vscode.commands.registerCommand('ctxLsp.explainSelection', () => this.explainSelection()),
      vscode.commands.registerCommand('ctxLsp.showContext', () => this.showContext()),
      vscode.commands.registerCommand('ctxLsp.summarizeHistory', () => this.summarizeHistory()),
      vscode.commands.registerCommand('ctxLsp.clearHistory', () => this.clearHistory()),
      vscode.commands.registerCommand('ctxLsp.restartServer', () => this.restart()),
      vscode.commands.registerCommand('ctxLsp.showOutput', () => this.output.show(true)),
      vscode.commands.registerCommand('ctxLsp.trustWorkspace', () =>
        this.guarded('Trust Workspace Config', () => trustWorkspace(true, (c, a) => this.execute(c, a))),
      ),
      vscode.commands.registerCommand('ctxLsp.untrustWorkspace', () =>
        this.guarded('Stop Trusting Workspace Config', () => trustWorkspace(false, (c, a) => this.execute(c, a))),
      ),
      vscode.workspace.onDidChangeConfiguration((event) => this.configurationChanged(event)),
      // The server learns VS Code's trust once, at start: trusting the workspace restarts it.
      vscode.workspace.onDidGrantWorkspaceTrust(() => this.restartSoon('The workspace is now trusted')),
    );
    this.updateStatus();
    this.status.show();
  }

  // -- lifecycle -------------------------------------------------------------------------------

  start(): Promise<void> {
    this.starting = this.startServer();
    return this.starting;
  }

  /** The running client, once the current start has finished. */
  async running(): Promise<LanguageClient> {
    await this.starting;
    const client = this.client;
    if (!client?.isRunning()) {
      throw new Error('ctx-lsp is not running (ctx: Restart Server, or see ctx: Show Server Output).');
    }
    return client;
  }

  private async startServer(): Promise<void> {
    this.startFailure = undefined;
    try {
      this.serverCommand = resolveServer();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.failedToStart(message, error instanceof ServerNotFound);
      return;
    }
    const { command, args, source, cwd } = this.serverCommand;
    this.output.appendLine(`Starting ctx-lsp: ${[command, ...args].join(' ')} (from ${source})`);
    const serverOptions: ServerOptions = {
      command,
      args,
      // No `transport`: TransportKind.stdio would append `--stdio` to the arguments.
      options: { env: process.env, cwd },
    };
    this.stderrTail = [];
    let everRunning = false;
    const lines = (input: Readable, each: (line: string) => void): void => {
      readline.createInterface({ input, crlfDelay: Infinity, terminal: false, historySize: 0 }).on('line', each);
    };
    const clientOptions: LanguageClientOptions = {
      // Files only: the server works on documents inside the workspace folders.
      documentSelector: [{ scheme: 'file' }],
      outputChannel: this.output,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
      // editorTrusted: in a workspace VS Code does not trust, the server never applies the
      // repository's risky .ctx/config.toml keys, never asks to, and refuses ctx.trustWorkspace.
      initializationOptions: { ...this.settings.explicit(), editorTrusted: vscode.workspace.isTrusted },
      stdioOptions: {
        stdout: (input, channel) => lines(input, (line) => channel.info(line)),
        stderr: (input, channel) => {
          const levels = new StderrLevels(channel);
          lines(input, (line) => {
            levels.line(line);
            this.stderrTail.push(line);
            this.stderrTail.splice(0, this.stderrTail.length - 20);
          });
        },
      },
      // A server that cannot start gets one clear notification (ours), not a restart loop.
      initializationFailedHandler: () => false,
      errorHandler: {
        error: (_error, _message, count) =>
          count !== undefined && count <= 3 ? { action: ErrorAction.Continue } : { action: ErrorAction.Shutdown },
        closed: () => this.closed(everRunning),
      },
      middleware: {
        workspace: {
          configuration: (params, token, next) =>
            params.items.map((item) =>
              item.section === 'ctx'
                ? this.settings.explicit(item.scopeUri ? vscode.Uri.parse(item.scopeUri) : undefined)
                : (next({ items: [item] }, token) as unknown[])[0],
            ),
        },
        window: {
          // Answers saved under .ctx/…/answers/<time>/*.md open as a rendered preview beside
          // the code.
          showDocument: async (params, token, next) => {
            const uri = vscode.Uri.parse(params.uri);
            const answer = /\/\.ctx\/(.+\/)?answers\/([^/]+\/)?[^/]+\.md$/;
            if (uri.scheme === 'file' && answer.test(uri.path)) {
              try {
                await vscode.commands.executeCommand('markdown.showPreviewToSide', uri);
                return { success: true };
              } catch {
                // no Markdown preview: open the file itself
              }
            }
            return next(params, token);
          },
        },
        provideInlineCompletionItems: (document, position, ctx, token, next) =>
          this.busy.run(async () => next(document, position, ctx, token)),
        resolveCodeAction: (item, token, next) => this.busy.run(async () => next(item, token)),
        executeCommand: (command, args, next) =>
          this.busy.run(async () => {
            const result: unknown = await next(command, args);
            if (SHOWN_RESULTS.has(command) && isResult(result) && result.shown !== true) {
              await this.showAnswer(titleOf(command), result);
            }
            return result;
          }),
      },
    };
    const client = new LanguageClient('ctx', 'ctx-lsp', serverOptions, clientOptions);
    this.client = client;
    client.onDidChangeState(() => {
      if (this.client === client) {
        this.updateStatus();
      }
    });
    try {
      await client.start();
    } catch (error) {
      this.client = undefined;
      const message = error instanceof Error ? error.message : String(error);
      const said = this.stderrTail.filter((line) => line.trim()).slice(-3).join(' | ');
      this.failedToStart(`${[command, ...args].join(' ')} exited: ${said || message}.`, false);
      return;
    }
    everRunning = true;
    this.output.appendLine('ctx-lsp is running.');
    this.updateStatus();
    void this.refreshModel();
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client) {
      try {
        await client.stop(5000);
      } catch (error) {
        this.output.appendLine(`Stopping the server: ${String(error)}`);
      }
    }
    this.updateStatus();
  }

  restart(): Promise<void> {
    if (!this.restartWaiting) {
      const run = this.restartQueue.then(async () => {
        this.restartWaiting = undefined;
        await this.stop();
        await this.start();
        if (this.client) {
          void vscode.window.setStatusBarMessage('ctx: server restarted', 3000);
          await this.chat.reload();
        }
      });
      this.restartWaiting = run;
      this.restartQueue = run.catch(() => undefined);
    }
    return this.restartWaiting;
  }

  /**
   * One restart for events that come together: granting workspace trust also changes the
   * effective ctx.server settings, and two overlapping starts would register the server's
   * commands twice.
   */
  private restartSoon(why: string): void {
    this.output.appendLine(`${why}: restarting ctx-lsp.`);
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => void this.restart(), 300);
  }

  dispose(): void {
    clearTimeout(this.restartTimer);
    void this.stop();
    for (const d of this.disposables) {
      d.dispose();
    }
  }

  /** The server process ended: restart a crashed server a few times, never one that never ran. */
  private closed(everRunning: boolean): CloseHandlerResult {
    if (!everRunning) {
      return { action: CloseAction.DoNotRestart, handled: true };
    }
    const now = Date.now();
    this.restarts = [...this.restarts.filter((t) => now - t < 3 * 60 * 1000), now];
    if (this.restarts.length > 4) {
      const said = this.stderrTail.slice(-3).join(' | ');
      return {
        action: CloseAction.DoNotRestart,
        message: `ctx: the server crashed 5 times in 3 minutes and was not restarted${said ? `: ${said}` : ''}. Run "ctx: Restart Server" after fixing it.`,
      };
    }
    return { action: CloseAction.Restart };
  }

  private failedToStart(why: string, notFound: boolean): void {
    this.startFailure = why;
    this.output.appendLine(`Cannot start ctx-lsp: ${why}`);
    this.updateStatus();
    const fix = notFound
      ? ' Install it (`pip install ctx-lsp`) into the Python that VS Code uses, or set ctx.server.path to the ctx-lsp executable.'
      : ' Check the output (ctx), or set ctx.server.path / ctx.server.python to a working installation.';
    void vscode.window
      .showErrorMessage(`ctx: cannot start the language server: ${why}${fix}`, 'Open Settings', 'Show Output', 'Retry')
      .then((choice) => {
        if (choice === 'Open Settings') {
          void vscode.commands.executeCommand('workbench.action.openSettings', 'ctx.server');
        } else if (choice === 'Show Output') {
          this.output.show(true);
        } else if (choice === 'Retry') {
          void this.restart();
        }
      });
  }

  private configurationChanged(event: vscode.ConfigurationChangeEvent): void {
    if (!event.affectsConfiguration('ctx')) {
      return;
    }
    if (event.affectsConfiguration('ctx.server')) {
      this.restartSoon('Server settings changed');
      return;
    }
    this.updateStatus();
    const client = this.client;
    if (client?.isRunning()) {
      void client
        .sendNotification(DidChangeConfigurationNotification.type, {
          settings: { ctx: this.settings.explicit() },
        })
        .then(() => this.refreshModel());
    }
  }

  // -- status bar ------------------------------------------------------------------------------

  private model(): string {
    return this.serverModel ?? this.settings.model();
  }

  private updateStatus(): void {
    const client = this.client;
    this.status.backgroundColor = undefined;
    this.status.command = 'ctxLsp.showContext';
    if (this.startFailure !== undefined || client === undefined) {
      this.status.text = '$(error) ctx';
      this.status.tooltip = this.startFailure
        ? `ctx-lsp is not running: ${this.startFailure}\nClick to see the output.`
        : 'ctx-lsp is not running. Click to see the output.';
      this.status.command = 'ctxLsp.showOutput';
      this.status.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
    } else if (client.state === State.Starting) {
      this.status.text = '$(loading~spin) ctx';
      this.status.tooltip = 'ctx-lsp is starting…';
    } else if (!client.isRunning()) {
      this.status.text = '$(error) ctx';
      this.status.tooltip = 'ctx-lsp stopped. Click to see the output; ctx: Restart Server starts it again.';
      this.status.command = 'ctxLsp.showOutput';
      this.status.backgroundColor = new vscode.ThemeColor('statusBarItem.errorBackground');
    } else {
      const icon = this.busyNow ? '$(loading~spin)' : '$(sparkle)';
      this.status.text = `${icon} ${this.model()}`;
      this.status.tooltip = this.busyNow
        ? `ctx: asking ${this.model()}…`
        : `ctx: ${this.model()} — click to show the context`;
    }
  }

  /** The model the server actually uses, when its context summary says so. */
  private async refreshModel(): Promise<void> {
    try {
      const result = await this.execute('ctx.showContext', {}, false);
      const settings = result.settings as Record<string, unknown> | undefined;
      const model = result.model ?? settings?.model;
      this.serverModel = typeof model === 'string' && model ? model : undefined;
    } catch {
      this.serverModel = undefined;
    }
    this.updateStatus();
  }

  // -- commands --------------------------------------------------------------------------------

  /** Run a server command; `spin` shows the status bar spinner while it runs. */
  async execute(command: string, args: Record<string, unknown>, spin = true): Promise<CommandResult> {
    const client = this.client;
    if (!client?.isRunning()) {
      throw new Error('ctx-lsp is not running (ctx: Restart Server, or see ctx: Show Server Output).');
    }
    const run = async (): Promise<CommandResult> => {
      const result: unknown = await client.sendRequest(ExecuteCommandRequest.type, {
        command,
        arguments: [args],
      });
      if (!isResult(result)) {
        throw new Error(`${command} returned no text`);
      }
      return result;
    };
    return spin ? this.busy.run(run) : run();
  }

  private async guarded(what: string, work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.output.appendLine(`${what} failed: ${message}`);
      void vscode.window.showErrorMessage(`ctx: ${what} failed: ${message}`);
    }
  }

  private async showAnswer(title: string, result: CommandResult): Promise<void> {
    const uri = this.answers.add(title, result.text);
    try {
      await vscode.commands.executeCommand('markdown.showPreviewToSide', uri);
    } catch {
      const doc = await vscode.workspace.openTextDocument(uri);
      await vscode.languages.setTextDocumentLanguage(doc, 'markdown');
      await vscode.window.showTextDocument(doc, { viewColumn: vscode.ViewColumn.Beside, preview: true });
    }
  }

  async commitMessage(arg?: unknown): Promise<void> {
    await this.guarded('Generate Commit Message', async () => {
      const repo = pickRepository(arg);
      const result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.SourceControl, title: 'ctx: writing a commit message…' },
        () => this.execute('ctx.commitMessage', {}),
      );
      const message = result.text.trim();
      if (repo) {
        repo.inputBox.value = message;
        await vscode.commands.executeCommand('workbench.view.scm');
      } else {
        await this.showAnswer('Commit message', { ...result, text: message });
        void vscode.window.showWarningMessage('ctx: no git repository is open; the message is shown in an editor.');
      }
    });
  }

  async explainSelection(): Promise<void> {
    await this.guarded('Explain Selection', async () => {
      const editor = vscode.window.activeTextEditor;
      if (!editor) {
        throw new Error('no editor is active');
      }
      let range: vscode.Range = editor.selection;
      if (editor.selection.isEmpty) {
        range = editor.document.lineAt(editor.selection.active.line).range;
      }
      const result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Window, title: 'ctx: explaining…' },
        () =>
          this.execute('ctx.explain', {
            uri: editor.document.uri.toString(),
            range: {
              start: { line: range.start.line, character: range.start.character },
              end: { line: range.end.line, character: range.end.character },
            },
          }),
      );
      // The server saves the answer under .ctx/ and opens it (window/showDocument, which the
      // middleware turns into a Markdown preview); show it here only when it could not.
      if (result.shown !== true) {
        await this.showAnswer('Explanation', result);
      }
    });
  }

  /** Opens the chat with a question about the selection (its text goes along as context). */
  async askSelection(): Promise<void> {
    await this.guarded('Ask about the Selection', async () => {
      const question = await vscode.window.showInputBox({
        prompt: 'ctx: ask about the selection (/explain, /fix, /tests work too)',
        placeHolder: 'Why does this fail?',
      });
      if (question?.trim()) {
        await this.chat.open(question);
      }
    });
  }

  async showContext(): Promise<void> {
    await this.guarded('Show Context', async () => {
      const uri = vscode.window.activeTextEditor?.document.uri.toString();
      const result = await this.execute('ctx.showContext', uri ? { uri } : {});
      delete result.documentText;
      await this.showAnswer('Context', result);
    });
  }

  async summarizeHistory(): Promise<void> {
    await this.guarded('Summarize History', async () => {
      const result = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title: 'ctx: summarizing the history…', cancellable: false },
        () => this.execute('ctx.summarizeHistory', {}),
      );
      await this.showAnswer('History summary', result);
    });
  }

  async clearHistory(): Promise<void> {
    await this.guarded('Clear History', async () => {
      const answer = await vscode.window.showWarningMessage(
        'ctx: clear the chat history of this workspace (also on disk, in .ctx/)?',
        { modal: true },
        'Clear History',
      );
      if (answer !== 'Clear History') {
        return;
      }
      const result = await this.execute('ctx.clearHistory', {});
      await this.chat.reload();
      void vscode.window.showInformationMessage(`ctx: ${result.text}`);
    });
  }
}

function isResult(value: unknown): value is CommandResult {
  return typeof value === 'object' && value !== null && typeof (value as CommandResult).text === 'string';
}

function titleOf(command: string): string {
  return command === 'ctx.generateTests' ? 'Generated tests' : 'Explanation';
}

// -- the git extension's API, typed as far as we use it --------------------------------------------

interface GitInputBox {
  value: string;
}
interface GitRepository {
  rootUri: vscode.Uri;
  inputBox: GitInputBox;
}
interface GitAPI {
  repositories: GitRepository[];
}
interface GitExtension {
  getAPI(version: 1): GitAPI;
}

function pickRepository(arg?: unknown): GitRepository | undefined {
  const git = vscode.extensions.getExtension<GitExtension>('vscode.git');
  if (!git?.isActive) {
    return undefined;
  }
  const repos = git.exports.getAPI(1).repositories;
  if (repos.length === 0) {
    return undefined;
  }
  // From the Source Control title bar the argument is the repository's SourceControl.
  const fromScm = (arg as { rootUri?: vscode.Uri } | undefined)?.rootUri;
  const target = fromScm ?? vscode.window.activeTextEditor?.document.uri;
  if (target) {
    const inside = repos
      .filter((r) => target.fsPath === r.rootUri.fsPath || target.fsPath.startsWith(r.rootUri.fsPath + '/'))
      .sort((a, b) => b.rootUri.fsPath.length - a.rootUri.fsPath.length);
    if (inside.length) {
      return inside[0];
    }
  }
  return repos[0];
}
