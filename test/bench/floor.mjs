// The JSON parse floor of `detect`, as a process of its own so start-up counts as it does for the
// executable: read the files with the line splitter detect uses (compiled, in dist/) and JSON.parse each line.
//   node test/bench/floor.mjs SETTLEMENTS DEATHS
import { readLineBatches } from "../../dist/services/ingest/lines.js";

let events = 0;
for (const file of process.argv.slice(2)) {
  for await (const batch of readLineBatches(file)) {
    for (const line of batch.lines) {
      if (typeof line === "string" && line.length > 0) {
        JSON.parse(line);
        events++;
      }
    }
  }
}
process.stdout.write(`${events}\n`);
