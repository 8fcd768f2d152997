// The TCP connections a process holds, read from /proc (Linux): to see, from outside, that a child dialled again.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

export interface TcpConnection {
  /** The socket's inode: a new inode is a new connection, even on the same ports. */
  inode: string;
  localPort: number;
  remotePort: number;
  /** The kernel's state code: '01' established, '02' SYN sent, '06' TIME_WAIT, ... */
  state: string;
}

/** The TCP (v4 and v6) sockets that process `pid` has open now; [] once it has exited. */
export function tcpConnections(pid: number): TcpConnection[] {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return [];
  }
  const inodes = new Set<string>();
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  const out: TcpConnection[] = [];
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || !inodes.has(f[9])) continue;
      const port = (addr: string) => parseInt(addr.split(':')[1], 16);
      out.push({ inode: f[9], localPort: port(f[1]), remotePort: port(f[2]), state: f[3] });
    }
  }
  return out;
}
