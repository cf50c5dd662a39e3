// One shard of `detect` in a worker thread: the lines it is sent go through its ShardEngine.
import { parentPort, workerData } from "node:worker_threads";
import type { FromShard, ShardSetup, ToShard } from "./protocol.ts";
import { ShardEngine } from "./shard-engine.ts";

const port = parentPort;
if (!port) throw new Error("services/detect/shard.ts runs as a worker thread of `fundguard detect`");
const shard = new ShardEngine(workerData as ShardSetup);
const reply = (m: FromShard) => port.postMessage(m);

port.on("message", (m: ToShard) => {
  reply("end" in m ? shard.result() : { ack: true, bad: shard.lines(m) });
});
