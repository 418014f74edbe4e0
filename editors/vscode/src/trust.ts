// Workspace trust: the server holds back a repository's risky .ctx/config.toml keys until the
// user trusts that file; VS Code's own trust comes first (see editorTrusted in extension.ts).
import * as vscode from 'vscode';

type Execute = (command: string, args: Record<string, unknown>) => Promise<{ text: string }>;

/** Trust (or stop trusting) a workspace folder's .ctx/ files as they are now. */
export async function trustWorkspace(trust: boolean, execute: Execute): Promise<void> {
  if (trust && !vscode.workspace.isTrusted) {
    // The server would refuse too: an untrusted VS Code workspace never trusts the file.
    const choice = await vscode.window.showWarningMessage(
      'ctx: VS Code does not trust this workspace, so its .ctx/config.toml cannot be trusted. Trust the workspace in VS Code first.',
      'Manage Workspace Trust',
    );
    if (choice === 'Manage Workspace Trust') {
      await vscode.commands.executeCommand('workbench.trust.manage');
    }
    return;
  }
  const folders = (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === 'file');
  let folder: vscode.WorkspaceFolder | undefined = folders[0];
  if (folders.length > 1) {
    folder = await vscode.window.showWorkspaceFolderPick({
      placeHolder: trust ? "ctx: trust which folder's .ctx/ files?" : 'ctx: stop trusting which folder?',
    });
    if (!folder) {
      return;
    }
  }
  const result = await execute('ctx.trustWorkspace', folder ? { folder: folder.uri.toString(), trust } : { trust });
  void vscode.window.showInformationMessage(`ctx: ${result.text}`);
}
