// The server's settings as VS Code holds them: only the values the user set explicitly go
// to the server, so that defaults never shadow the workspace's .ctx/config.toml.
import * as vscode from 'vscode';

interface PropertySchema {
  scope?: string;
}

/** `ctx.*` keys that belong to the extension itself, not to the server. */
const EXTENSION_ONLY = /^(server|trace)\./;

export class ServerSettings {
  /** camelCase key (without `ctx.`) → scope from the manifest. */
  private readonly keys: Map<string, string>;

  constructor(packageJSON: {
    contributes?: { configuration?: { properties?: Record<string, PropertySchema> } };
  }) {
    this.keys = new Map();
    const properties = packageJSON.contributes?.configuration?.properties ?? {};
    for (const [full, schema] of Object.entries(properties)) {
      const key = full.replace(/^ctx\./, '');
      if (full.startsWith('ctx.') && !EXTENSION_ONLY.test(key)) {
        this.keys.set(key, schema.scope ?? 'window');
      }
    }
  }

  /** The explicitly set values, camelCase keys, for one resource (or the window). */
  explicit(scope?: vscode.Uri): Record<string, unknown> {
    const cfg = vscode.workspace.getConfiguration('ctx', scope);
    const out: Record<string, unknown> = {};
    for (const [key, settingScope] of this.keys) {
      const inspected = cfg.inspect(key);
      if (!inspected) {
        continue;
      }
      // Machine-scoped settings (endpoint, key variable) only from user settings.
      const value =
        settingScope === 'machine' || settingScope === 'application'
          ? inspected.globalValue
          : (inspected.workspaceFolderValue ?? inspected.workspaceValue ?? inspected.globalValue);
      if (value !== undefined) {
        out[key] = value;
      }
    }
    return out;
  }

  /** The model the status bar shows: the configured one (or the manifest default). */
  model(): string {
    return vscode.workspace.getConfiguration('ctx').get<string>('model', '') || 'default model';
  }
}
