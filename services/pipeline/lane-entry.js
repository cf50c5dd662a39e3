// Worker threads do not inherit the main thread's tsx loader (Node 20), so a lane registers its own.
import { register } from "tsx/esm/api";

register();
await import("./lane-thread.ts");
