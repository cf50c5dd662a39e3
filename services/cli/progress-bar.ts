import { SingleBar } from "cli-progress";

/** A bytes progress bar with ETA on stderr, silent when stderr is not a terminal. */
export function bytesProgressBar(label: string): { update(read: number, total: number): void; stop(): void } {
  if (!process.stderr.isTTY) return { update() {}, stop() {} };
  const bar = new SingleBar({
    stream: process.stderr,
    format: `${label} [{bar}] {percentage}% | {value}/{total} MiB | ETA {eta_formatted}`,
    hideCursor: true,
  });
  let started = false;
  const mib = (b: number) => Math.round((b / 1048576) * 10) / 10;
  return {
    update(read, total) {
      if (!started) {
        bar.start(mib(total), 0);
        started = true;
      }
      bar.update(mib(read));
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
