import { escapeControls } from './escape.js';

/**
 * Buffered stdout for commands that print many lines, quiet when the reader goes away
 * (`warden log | head` closes the pipe: that is not an error). Every line is escaped
 * (escape.ts): what it quotes may come from a log, a job file or an agent.
 */
export class Output {
  private chunks: string[] = [];
  private size = 0;
  private closed = false;

  constructor(private readonly stream: NodeJS.WriteStream = process.stdout) {
    stream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== 'EPIPE') throw error;
      this.closed = true;
    });
  }

  line(raw: string): void {
    if (this.closed) return;
    const text = escapeControls(raw);
    this.chunks.push(text, '\n');
    this.size += text.length + 1;
    if (this.size >= 64 * 1024) this.flush();
  }

  flush(): void {
    if (this.closed || this.chunks.length === 0) return;
    this.stream.write(this.chunks.join(''));
    this.chunks = [];
    this.size = 0;
  }

  /** Resolves once everything written so far has reached the stream. */
  async end(): Promise<void> {
    this.flush();
    if (this.closed) return;
    await new Promise<void>((resolve) => this.stream.write('', () => resolve()));
  }
}

/** Warnings and errors: one line on stderr, prefixed with the program name, control characters escaped. */
export function warn(message: string): void {
  process.stderr.write(`warden: ${escapeControls(message)}\n`);
}
