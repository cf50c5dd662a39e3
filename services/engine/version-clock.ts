/**
 * Row versions for ReplacingMergeTree: microseconds of wall time, strictly increasing per
 * process. A later evaluation always outranks an earlier one, including after a crash and
 * re-processing in a different interleaving of the input topics, where input offsets would not.
 */
export class VersionClock {
  private last = 0;
  next(): number {
    const now = Date.now() * 1000;
    this.last = now > this.last ? now : this.last + 1;
    return this.last;
  }
}
