// A lane in a worker thread: requests from the worker's main thread through its LaneCore, answers
// (and registry outages) back; buffers go both ways as transfers, not copies.
import { parentPort, type TransferListItem, workerData } from "node:worker_threads";
import { LaneCore } from "./lane-core.ts";
import type { FromLane, LaneRequest, LaneSetup } from "./lane-protocol.ts";
import { transferablesOf } from "./lanes.ts";

const port = parentPort;
if (!port) throw new Error("services/pipeline/lane-thread.ts runs as a worker thread of `fundguard worker`");
const send = (m: FromLane, transfer: TransferListItem[] = []) => port.postMessage(m, transfer);
const stopping = new AbortController();
const core = new LaneCore(
  workerData as LaneSetup,
  {
    failing: (dependency, e, attempt, delayMs) =>
      send({
        outage: "failing",
        dependency,
        reason: e instanceof Error ? e.message : String(e),
        attempt,
        delayMs,
      }),
    recovered: (dependency) => send({ outage: "recovered", dependency }),
  },
  stopping.signal,
);

type ToLane = { id: number; request: LaneRequest } | { abort: true };

port.on("message", (m: ToLane) => {
  // Not queued: it must reach a registry wait that holds the queue.
  if ("abort" in m) {
    stopping.abort(new Error("lane stopped while waiting for the registry"));
    return;
  }
  const { id, request } = m;
  core.handle(request).then(
    (result) => send({ id, ok: true, result }, transferablesOf(result)),
    (e: unknown) => send({ id, ok: false, error: e instanceof Error ? (e.stack ?? e.message) : String(e) }),
  );
});
