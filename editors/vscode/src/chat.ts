// The chat view: a webview in ctx's own side bar container, talking to the server's ctx.chat,
// ctx.applyCode and ctx.chatHistory.
//
// Why not VS Code's own Chat view with a chat participant: in code-server (VS Code 1.139) the
// Chat view never calls an extension's participant until a language model is available,
// which takes the default chat vendor's sign-in ("Language model unavailable", even with an
// extension-registered model). The conversation here needs no other vendor.
import * as vscode from 'vscode';
import { ExecuteCommandRequest, LanguageClient, WorkDoneProgress } from 'vscode-languageclient/node';

/** One turn of the restored conversation, as ctx.chatHistory returns it. */
export interface Turn {
  historyId: string;
  question: string;
  answer: string;
  cut?: boolean;
  time?: string;
}

/** What the chat needs from the extension: a running client, and the status bar spinner. */
export interface ChatHost {
  running(): Promise<LanguageClient>;
  busy<T>(work: () => Promise<T>): Promise<T>;
  log(line: string): void;
}

interface LspRange {
  start: { line: number; character: number };
  end: { line: number; character: number };
}

/** Where a turn's question pointed: Apply writes there. */
interface Target {
  uri: string;
  range?: LspRange;
}

type FromView =
  | { type: 'ready' }
  | { type: 'ask'; question: string }
  | { type: 'stop' }
  | { type: 'apply'; historyId: string; block: number }
  | { type: 'insert'; code: string };

function toLsp(range: vscode.Range): LspRange {
  return {
    start: { line: range.start.line, character: range.start.character },
    end: { line: range.end.line, character: range.end.character },
  };
}

function nonce(): string {
  let text = '';
  const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  for (let i = 0; i < 32; i++) {
    text += chars.charAt(Math.floor(Math.random() * chars.length));
  }
  return text;
}

export class ChatView implements vscode.WebviewViewProvider, vscode.Disposable {
  static readonly id = 'ctxLsp.chat';
  private view: vscode.WebviewView | undefined;
  /** The last file editor the user was in (the view itself takes the focus while typing). */
  private editor: vscode.TextEditor | undefined;
  private readonly targets = new Map<string, Target>();
  private asking: vscode.CancellationTokenSource | undefined;
  private counter = 0;
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly host: ChatHost,
  ) {
    this.editor = this.fileEditor(vscode.window.activeTextEditor);
    this.disposables.push(
      vscode.window.onDidChangeActiveTextEditor((editor) => {
        this.editor = this.fileEditor(editor) ?? this.editor;
        this.postContext();
      }),
      vscode.window.onDidChangeTextEditorSelection((event) => {
        if (event.textEditor === this.editor) {
          this.postContext();
        }
      }),
    );
  }

  dispose(): void {
    this.asking?.cancel();
    for (const d of this.disposables) {
      d.dispose();
    }
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    const media = vscode.Uri.joinPath(this.extensionUri, 'media');
    view.webview.options = { enableScripts: true, localResourceRoots: [media] };
    view.webview.html = this.html(view.webview, media);
    view.webview.onDidReceiveMessage((message: FromView) => this.received(message));
    view.onDidDispose(() => {
      if (this.view === view) {
        this.view = undefined;
      }
    });
  }

  /** Show the view, optionally with a question to ask at once. */
  async open(question?: string): Promise<void> {
    await vscode.commands.executeCommand(`${ChatView.id}.focus`);
    if (question) {
      await this.ask(question);
    }
  }

  /** The server's conversation changed underneath (history cleared, server restarted). */
  async reload(): Promise<void> {
    if (this.view) {
      await this.restore();
    }
  }

  // -- from the webview ----------------------------------------------------------------------

  private received(message: FromView): void {
    switch (message.type) {
      case 'ready':
        this.postContext();
        void this.restore();
        break;
      case 'ask':
        void this.ask(message.question);
        break;
      case 'stop':
        this.asking?.cancel();
        break;
      case 'apply':
        void this.apply(message.historyId, message.block);
        break;
      case 'insert':
        void this.insert(message.code);
        break;
    }
  }

  private post(message: Record<string, unknown>): void {
    void this.view?.webview.postMessage(message);
  }

  private fileEditor(editor: vscode.TextEditor | undefined): vscode.TextEditor | undefined {
    return editor && editor.document.uri.scheme === 'file' ? editor : undefined;
  }

  /** The file and selection the next question carries, as the view shows them. */
  private target(): { target?: Target; label: string } {
    const editor = this.editor;
    if (!editor || editor.document.isClosed) {
      return { label: 'no file' };
    }
    const name = vscode.workspace.asRelativePath(editor.document.uri);
    const selection = editor.selection;
    if (selection.isEmpty) {
      return { target: { uri: editor.document.uri.toString() }, label: name };
    }
    const lines =
      selection.start.line === selection.end.line
        ? `line ${selection.start.line + 1}`
        : `lines ${selection.start.line + 1}–${selection.end.line + 1}`;
    return { target: { uri: editor.document.uri.toString(), range: toLsp(selection) }, label: `${name}, ${lines}` };
  }

  private postContext(): void {
    this.post({ type: 'context', label: this.target().label });
  }

  private async restore(): Promise<void> {
    try {
      const client = await this.host.running();
      const result: unknown = await client.sendRequest(ExecuteCommandRequest.type, {
        command: 'ctx.chatHistory',
        arguments: [{ limit: 50 }],
      });
      const turns = (result as { turns?: Turn[] } | null)?.turns ?? [];
      this.post({ type: 'history', turns });
    } catch (error) {
      this.post({ type: 'history', turns: [], error: `Cannot load the conversation: ${message(error)}` });
    }
  }

  // -- one turn ------------------------------------------------------------------------------

  private async ask(question: string): Promise<void> {
    question = question.trim();
    if (!question) {
      return;
    }
    if (this.asking) {
      this.post({ type: 'error', message: 'ctx is still answering: stop it first.' });
      return;
    }
    const { target, label } = this.target();
    const source = new vscode.CancellationTokenSource();
    this.asking = source;
    this.post({ type: 'start', question, context: label });
    const token = `ctx-chat-${process.pid}-${++this.counter}`;
    let streamed = '';
    let progress: vscode.Disposable | undefined;
    try {
      const client = await this.host.running();
      progress = client.onProgress(WorkDoneProgress.type, token, (value) => {
        // Each report carries the text written since the previous one.
        if (value.kind === 'report' && value.message) {
          streamed += value.message;
          this.post({ type: 'delta', text: value.message });
        }
      });
      const args: Record<string, unknown> = { question };
      if (target) {
        args.uri = target.uri;
        if (target.range) {
          args.range = target.range;
        }
      }
      const result = (await this.host.busy(() =>
        Promise.resolve(
          client.sendRequest(
            ExecuteCommandRequest.type,
            { command: 'ctx.chat', arguments: [args], workDoneToken: token },
            source.token,
          ),
        ),
      )) as { text?: string; historyId?: string; cut?: boolean } | null;
      if (!result || typeof result.text !== 'string') {
        throw new Error('ctx.chat returned no text');
      }
      if (result.historyId && target) {
        this.targets.set(result.historyId, target);
      }
      this.post({ type: 'done', text: result.text, historyId: result.historyId, cut: result.cut === true });
    } catch (error) {
      if (source.token.isCancellationRequested) {
        this.post({ type: 'done', text: streamed, cut: true });
      } else {
        this.host.log(`Chat failed: ${message(error)}`);
        this.post({ type: 'error', message: message(error), text: streamed });
      }
    } finally {
      progress?.dispose();
      source.dispose();
      this.asking = undefined;
    }
  }

  /** One code block of an answer, written by the server with workspace/applyEdit. */
  private async apply(historyId: string, block: number): Promise<void> {
    const target = this.targets.get(historyId) ?? this.target().target;
    if (!target) {
      this.post({ type: 'applied', historyId, block, ok: false, text: 'Open the file to apply the code to.' });
      return;
    }
    const where = vscode.workspace.asRelativePath(vscode.Uri.parse(target.uri));
    try {
      const client = await this.host.running();
      const args: Record<string, unknown> = { historyId, block, uri: target.uri };
      if (target.range) {
        args.range = target.range;
      } else {
        // Without a selection the block replaces the whole file: VS Code shows that edit in its
        // Refactor Preview and applies it only when the user says so.
        args.confirm = true;
      }
      const result = (await this.host.busy(() =>
        Promise.resolve(client.sendRequest(ExecuteCommandRequest.type, { command: 'ctx.applyCode', arguments: [args] })),
      )) as { text?: string; applied?: boolean } | null;
      const ok = result?.applied === true;
      this.post({ type: 'applied', historyId, block, ok, text: ok ? `Applied to ${where}.` : (result?.text ?? 'Not applied.') });
    } catch (error) {
      this.post({ type: 'applied', historyId, block, ok: false, text: message(error) });
    }
  }

  /** A code block at the cursor of the last file editor (replacing its selection). */
  private async insert(code: string): Promise<void> {
    const editor = this.editor;
    if (!editor || editor.document.isClosed) {
      void vscode.window.showWarningMessage('ctx: open a file to insert the code into.');
      return;
    }
    const shown = await vscode.window.showTextDocument(editor.document, editor.viewColumn);
    await shown.edit((edit) => edit.replace(shown.selection, code));
  }

  // -- the page ------------------------------------------------------------------------------

  private html(webview: vscode.Webview, media: vscode.Uri): string {
    const n = nonce();
    const script = webview.asWebviewUri(vscode.Uri.joinPath(media, 'chat.js'));
    const style = webview.asWebviewUri(vscode.Uri.joinPath(media, 'chat.css'));
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src ${webview.cspSource}; script-src 'nonce-${n}';">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link href="${style.toString()}" rel="stylesheet">
<title>ctx chat</title>
</head>
<body>
<div id="log" role="log" aria-live="polite"></div>
<form id="ask">
  <div id="context" title="The file and selection sent with the question"></div>
  <textarea id="question" rows="3" placeholder="Ask ctx… /explain, /fix, /tests; @path adds a file. Enter sends, Shift+Enter: new line" aria-label="Question"></textarea>
  <div class="buttons">
    <button type="submit" id="send">Send</button>
    <button type="button" id="stop" hidden>Stop</button>
  </div>
</form>
<script nonce="${n}" src="${script.toString()}"></script>
</body>
</html>`;
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
