// First ports for servers that keep their port across restarts (kubeconfigs and agents hold it): picked below the
// kernel's ephemeral range, as kube-apiserver's fixed 6443 is. A port from that range (what listening on port 0 gives)
// can be taken, while the server is down, as the local port of any outgoing connection on the machine, and the server
// then cannot come back on it.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const FROM = 10000;

/** The kernel's ephemeral port range (Linux), or the IANA default elsewhere. */
export function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo > FROM + 1000 && hi >= lo) return [lo, hi];
  } catch {
    /* not Linux */
  }
  return [49152, 65535];
}

function free(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** A port free on `host` now, at random below the ephemeral range (so two instances rarely pick the same); 0 if none found. */
export async function stablePort(host: string): Promise<number> {
  const span = ephemeralRange()[0] - FROM;
  for (let i = 0; i < 50; i++) {
    const port = FROM + Math.floor(Math.random() * span);
    if (await free(host, port)) return port;
  }
  return 0;
}
