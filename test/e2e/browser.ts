// What the browser test needs from the machine: Debian's Chromium and a CJK font (the UI's labels
// are Chinese; without one the screenshots show boxes). When something is missing it says how to
// install it, instead of failing later with a launch error.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { type Browser, chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export const INSTALL_HINT =
  "install them with `apt-get update && apt-get install -y chromium fonts-wqy-zenhei` (Debian), " +
  "or set CHROMIUM_PATH to a Chromium binary";

/** Why the browser test cannot run on this machine, or null when it can. */
export function missingBrowserRequirements(
  chromium: string,
  env: NodeJS.ProcessEnv = process.env,
): string | null {
  const missing: string[] = [];
  if (!existsSync(chromium)) missing.push(`Chromium (nothing at ${chromium})`);
  if (!hasCjkFont(env)) missing.push("a CJK font (`fc-list :lang=zh` lists none)");
  return missing.length === 0 ? null : `the browser test needs ${missing.join(" and ")}: ${INSTALL_HINT}`;
}

function hasCjkFont(env: NodeJS.ProcessEnv): boolean {
  try {
    const families = execFileSync("fc-list", [":lang=zh", "family"], {
      encoding: "utf8",
      env,
      stdio: ["ignore", "pipe", "ignore"],
    });
    return families.trim() !== "";
  } catch {
    // No fontconfig (it comes with the fonts package): Chromium would find no font either.
    return false;
  }
}

/** Headless Debian Chromium driven by playwright-core (which downloads no browser), or an error saying what to install. */
export async function launchChromium(): Promise<Browser> {
  const missing = missingBrowserRequirements(CHROMIUM);
  if (missing) throw new Error(missing);
  return chromium
    .launch({
      executablePath: CHROMIUM,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    })
    .catch((err: unknown) => {
      const reason = err instanceof Error ? err.message.split("\n")[0] : String(err);
      throw new Error(`Chromium at ${CHROMIUM} did not start (${reason}); ${INSTALL_HINT}`, { cause: err });
    });
}
