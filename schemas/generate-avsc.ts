// Writes schemas/*.avsc from the TypeScript literals; a unit test fails when they are stale.
import { writeFileSync } from "node:fs";
import { avscText } from "./avro.ts";
import { AVSC_FILES } from "./files.ts";

for (const [file, schema] of Object.entries(AVSC_FILES)) {
  writeFileSync(new URL(file, import.meta.url), avscText(schema));
}
