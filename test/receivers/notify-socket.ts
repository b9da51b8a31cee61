/**
 * A fake service-manager notify socket for tests: python3 binds an AF_UNIX SOCK_DGRAM socket with
 * SO_PASSCRED (Node cannot) and prints one JSON line per datagram: the sender's PID from
 * SCM_CREDENTIALS and the payload. File descriptors passed with BARRIER=1 are closed at once, which is
 * what systemd does to release the sender's barrier (sd_notify_barrier(3)).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface Datagram {
  pid: number | null;
  data: string;
}

export interface NotifySocket {
  path: string;
  /** Every datagram received so far, in order. */
  datagrams: Datagram[];
  /** Resolves once `pred(datagrams)` holds; rejects after timeoutMs (default 10 000). */
  waitFor(pred: (d: Datagram[]) => boolean, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

const SCRIPT = `
import array, json, os, socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print(json.dumps({"listening": True}), flush=True)
while True:
    data, anc, flags, addr = s.recvmsg(65536, socket.CMSG_SPACE(12) + socket.CMSG_SPACE(64))
    pid = None
    for level, kind, cdata in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", cdata[:12])[0]
        elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds = array.array("i")
            fds.frombytes(cdata[: len(cdata) - (len(cdata) % fds.itemsize)])
            for fd in fds:
                os.close(fd)
    print(json.dumps({"pid": pid, "data": data.decode("utf-8", "replace")}), flush=True)
`;

/** Starts the receiver on `socketPath` (which must not exist) and waits until it is bound. */
export async function startNotifySocket(socketPath: string): Promise<NotifySocket> {
  const child: ChildProcess = spawn('python3', ['-c', SCRIPT, socketPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const datagrams: Datagram[] = [];
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => (stderr += s));
  let exited = false;
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  void closed.then(() => (exited = true));
  const listening = new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    void closed.then(() => reject(new Error(`notify receiver exited: ${stderr}`)));
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      const msg = JSON.parse(line) as { listening?: boolean } & Partial<Datagram>;
      if (msg.listening) resolve();
      else datagrams.push({ pid: msg.pid ?? null, data: msg.data ?? '' });
    });
  });
  await listening;
  return {
    path: socketPath,
    datagrams,
    async waitFor(pred, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pred(datagrams)) {
        if (exited) throw new Error(`notify receiver exited: ${stderr}`);
        if (Date.now() > deadline) {
          throw new Error(`timed out; received: ${JSON.stringify(datagrams.map((d) => d.data))}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async close() {
      if (!exited) child.kill('SIGTERM');
      await closed;
    },
  };
}
