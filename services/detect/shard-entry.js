// Worker threads do not inherit the main thread's tsx loader (Node 20), so a shard registers its own.
import { register } from "tsx/esm/api";

register();
await import("./shard.ts");
