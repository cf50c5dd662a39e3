/**
 * Row versions for ReplacingMergeTree: microseconds of wall time, strictly increasing per clock.
 * A later evaluation always outranks an earlier one, including after a crash and re-processing in
 * a different interleaving of the input topics, where input offsets would not. `observe` lifts the
 * clock above versions another process wrote (a restored partition, a resumed run), so a skewed
 * or reset wall clock cannot write below them.
 */
export class VersionClock {
  constructor(private last = 0) {}
  next(): number {
    const now = Date.now() * 1000;
    this.last = now > this.last ? now : this.last + 1;
    return this.last;
  }
  observe(version: number): void {
    if (version > this.last) this.last = version;
  }
  get current(): number {
    return this.last;
  }
}
