// Failpoints, as etcd's gofail: named places where a test can make this process die with SIGKILL, to prove that what
// was recorded before that point is enough to finish after a restart. Off unless TRUSTPLANE_FAILPOINTS names them
// (comma-separated); each name fires at most once per process.
const armed = new Set((process.env.TRUSTPLANE_FAILPOINTS ?? '').split(',').map((s) => s.trim()).filter(Boolean));

export function failpoint(name: string): void {
  if (armed.size === 0 || !armed.delete(name)) return;
  process.stderr.write(`failpoint ${name}: killing this process (pid ${process.pid})\n`);
  process.kill(process.pid, 'SIGKILL');
}
