/** Where the CLI prints, and how it exits. */

/** The CLI's output: the process's stdout and stderr, or a test's buffers. */
export interface Io {
  out(text: string): void;
  err(text: string): void;
  /**
   * Whether `out` is a terminal, so that colour and the live status line of `ujr run` may be
   * used (still off with `NO_COLOR` or `--no-color`). Default: false.
   */
  readonly isTTY?: boolean;
}

export const consoleIo: Io = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
  get isTTY() {
    return process.stdout.isTTY;
  },
};
