// How to start ctx-lsp: the configured path, `ctx-lsp` on PATH, or `python -m ctx_lsp`.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';

export interface ServerCommand {
  command: string;
  args: string[];
  /** How it was found, for the output channel. */
  source: string;
  /** Working directory: the first workspace folder (so `python -m` sees the same sys.path). */
  cwd: string;
}

export class ServerNotFound extends Error {}

function isExecutable(file: string): boolean {
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) {
      return false;
    }
    if (process.platform === 'win32') {
      return true;
    }
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** `which`: the first executable `name` on PATH (with PATHEXT on Windows). */
export function which(name: string, envPath = process.env.PATH ?? ''): string | undefined {
  if (name.includes('/') || name.includes('\\')) {
    return isExecutable(name) ? name : undefined;
  }
  const exts =
    process.platform === 'win32' ? (process.env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';') : [''];
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) {
      continue;
    }
    for (const ext of exts) {
      const candidate = path.join(dir, name + ext);
      if (isExecutable(candidate)) {
        return candidate;
      }
    }
  }
  return undefined;
}

function expandVariables(value: string): string {
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? '';
  const home = process.env.HOME ?? process.env.USERPROFILE ?? '';
  return value
    .replace(/\$\{workspaceFolder\}/g, folder)
    .replace(/\$\{userHome\}/g, home)
    .replace(/^~(?=$|[/\\])/, home);
}

function pythonCandidate(): { python: string; from: string } {
  const ctx = vscode.workspace.getConfiguration('ctx');
  const own = ctx.get<string>('server.python', '').trim();
  if (own) {
    return { python: expandVariables(own), from: 'ctx.server.python' };
  }
  const fromPythonExt = vscode.workspace
    .getConfiguration('python')
    .get<string>('defaultInterpreterPath', '')
    .trim();
  if (fromPythonExt && fromPythonExt !== 'python') {
    return { python: expandVariables(fromPythonExt), from: 'python.defaultInterpreterPath' };
  }
  return { python: process.platform === 'win32' ? 'python' : 'python3', from: 'default' };
}

/**
 * The command that starts the server, or ServerNotFound with a message that says
 * what was tried and how to fix it.
 */
export function resolveServer(): ServerCommand {
  const folder = vscode.workspace.workspaceFolders?.find((f) => f.uri.scheme === 'file');
  const cwd = folder?.uri.fsPath ?? os.homedir();
  const ctx = vscode.workspace.getConfiguration('ctx');
  const extraArgs = ctx.get<string[]>('server.args', []);
  const configured = ctx.get<string>('server.path', '').trim();
  if (configured) {
    const expanded = expandVariables(configured);
    const found = which(expanded);
    if (!found) {
      throw new ServerNotFound(
        `ctx.server.path is "${configured}", which is not an executable file.`,
      );
    }
    return { command: found, args: extraArgs, source: 'ctx.server.path', cwd };
  }
  const onPath = which('ctx-lsp');
  if (onPath) {
    return { command: onPath, args: extraArgs, source: 'PATH', cwd };
  }
  const { python, from } = pythonCandidate();
  // Import what the server needs (pygls included), from the directory it will run in.
  const probe = spawnSync(python, ['-c', 'import ctx_lsp.server'], { cwd, timeout: 20000, encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    const why = probe.error
      ? `${python} could not be run (${probe.error.message})`
      : `${python} cannot import ctx_lsp (${lastLine(probe.stderr) || `exit ${probe.status}`})`;
    throw new ServerNotFound(
      `ctx-lsp is not on PATH and ${why} (interpreter from ${from}).`,
    );
  }
  return { command: python, args: ['-m', 'ctx_lsp', ...extraArgs], source: `${from}: ${python}`, cwd };
}

function lastLine(text: string | null): string {
  return (text ?? '').trim().split('\n').pop()?.trim() ?? '';
}
