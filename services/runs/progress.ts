// An events progress bar with rate and ETA on stderr; silent when stderr is not a terminal.
import { createReadStream } from "node:fs";
import { createGunzip } from "node:zlib";
import { SingleBar } from "cli-progress";

export interface Progress {
  /** `total` may be unknown (0) at first and set later. */
  update(done: number, total?: number): void;
  stop(): void;
}

export function eventsProgressBar(label: string, enabled = process.stderr.isTTY === true): Progress {
  if (!enabled) return { update() {}, stop() {} };
  const bar = new SingleBar({
    stream: process.stderr,
    format: `${label} [{bar}] {percentage}% | {value}/{total} events | {speed} events/s | ETA {eta_formatted}`,
    hideCursor: true,
    etaBuffer: 50,
    fps: 5,
  });
  let started = false;
  const t0 = performance.now();
  let first = 0;
  return {
    update(done, total) {
      if (!started) {
        bar.start(total ?? 0, done, { speed: 0 });
        first = done;
        started = true;
      }
      if (total !== undefined) bar.setTotal(total);
      const s = (performance.now() - t0) / 1000;
      bar.update(done, { speed: s > 0 ? Math.round((done - first) / s) : 0 });
    },
    stop() {
      if (started) bar.stop();
    },
  };
}

/** Lines in a file (plain or .gz), counted on raw bytes: the total of a progress bar. */
export async function countLines(path: string): Promise<number> {
  const file = createReadStream(path, { highWaterMark: 1 << 20 });
  const stream = path.endsWith(".gz") ? file.pipe(createGunzip()) : file;
  let n = 0;
  let last = 10;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    let i = chunk.indexOf(10);
    while (i >= 0) {
      n++;
      i = chunk.indexOf(10, i + 1);
    }
    if (chunk.length > 0) last = chunk[chunk.length - 1] as number;
  }
  return last === 10 ? n : n + 1;
}
