import { describe, expect, it } from "vitest";
import { VersionClock } from "../../services/pipeline/version-clock.ts";

describe("VersionClock", () => {
  it("is strictly increasing even within one microsecond of wall time", () => {
    const clock = new VersionClock();
    let last = 0;
    for (let i = 0; i < 10_000; i++) {
      const v = clock.next();
      expect(v).toBeGreaterThan(last);
      last = v;
    }
    expect(clock.current).toBe(last);
  });

  it("never goes below a floor or an observed version, even one far ahead of the wall clock", () => {
    const ahead = Date.now() * 1000 + 3_600_000_000;
    const floored = new VersionClock(ahead);
    expect(floored.next()).toBe(ahead + 1);
    const clock = new VersionClock();
    clock.next();
    clock.observe(ahead);
    clock.observe(5); // lower versions change nothing
    expect(clock.next()).toBe(ahead + 1);
  });
});
