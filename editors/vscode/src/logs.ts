// The server's stderr into the log channel at the level the server logged it at, so that a
// pygls warning reads as a warning and not as a failure.
import type * as vscode from 'vscode';

export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error';

/** Python's level names (ctx_lsp/__main__.py: "%(asctime)s %(levelname)s %(name)s: %(message)s"). */
const LEVELS: Record<string, Level> = {
  DEBUG: 'debug',
  INFO: 'info',
  WARNING: 'warn',
  WARN: 'warn',
  ERROR: 'error',
  CRITICAL: 'error',
  FATAL: 'error',
};

const RECORD = /^(?:\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[,.]\d+)?\s+)?(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\s+(.*)$/;

/**
 * Reads the server's stderr line by line. A log record's first line carries its level (the
 * channel adds its own time stamp, so the server's is dropped); the following lines of a
 * record (a traceback) keep that level. Anything before the first record (the interpreter
 * failing to import the server, say) is an error.
 */
export class StderrLevels {
  private current: Level = 'error';

  constructor(private readonly channel: Pick<vscode.LogOutputChannel, Level>) {}

  /** Logs one line; returns the level it was logged at. */
  line(text: string): Level {
    const match = RECORD.exec(text);
    if (match) {
      this.current = LEVELS[match[1]];
      this.channel[this.current](match[2]);
    } else {
      this.channel[this.current](text);
    }
    return this.current;
  }
}
