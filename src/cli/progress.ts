/**
 * A live block of progress lines on a terminal, one per data source being snapshotted. Log lines go
 * above it: the block is cleared before each log line and drawn again after. Off a terminal nothing is
 * drawn (the plain log lines read well in the journal).
 */
export interface Progress {
  update(key: string, text: string): void;
  done(key: string): void;
  /** Run `write` (a log line) without tearing the block. */
  around: (write: () => void) => void;
}

export function createProgress(stream: NodeJS.WriteStream): Progress | undefined {
  if (!stream.isTTY) return undefined;
  const lines = new Map<string, string>();
  let drawn = 0;
  const clear = () => {
    if (drawn > 0) stream.write(`\u001b[${drawn}A\u001b[0J`);
    drawn = 0;
  };
  const draw = () => {
    const width = Math.max(20, (stream.columns || 100) - 1);
    for (const [k, v] of lines) stream.write(`${`${k}: ${v}`.slice(0, width)}\n`);
    drawn = lines.size;
  };
  return {
    update(key, text) {
      // Kopia prefixes its progress with a spinner character; keep the counters.
      lines.set(key, text.replace(/^[*|/\\-]\s*/, ''));
      clear();
      draw();
    },
    done(key) {
      if (!lines.delete(key)) return;
      clear();
      draw();
    },
    around(write) {
      clear();
      write();
      draw();
    },
  };
}
