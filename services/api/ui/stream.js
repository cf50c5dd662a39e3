// fundguard UI: the client of GET /api/v1/stream (server-sent events). Read with fetch, not
// EventSource: EventSource cannot send the Authorization header, and a token in the URL is
// refused. A dropped connection is opened again after a growing pause; 401/403 and the
// server's `end` event stop it for good.
(() => {
  /** Each complete event of a text/event-stream chunk sequence, as [name, parsed data]. */
  function* parseEvents(state, text) {
    state.buf += text;
    for (let i = state.buf.indexOf("\n\n"); i >= 0; i = state.buf.indexOf("\n\n")) {
      const block = state.buf.slice(0, i);
      state.buf = state.buf.slice(i + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line === "" || line.startsWith(":")) continue;
        const c = line.indexOf(":");
        const field = c < 0 ? line : line.slice(0, c);
        const value = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
        if (field === "event") name = value;
        else if (field === "data") data.push(value);
      }
      if (data.length > 0) yield [name, JSON.parse(data.join("\n"))];
    }
  }

  /**
   * Opens the stream with `query` (the list's filters); `onEvent(name, data)` gets each event,
   * `onStop(status)` is told when it stops for good. Returns a function that closes it.
   */
  function open(query, { token, onEvent, onStop }) {
    const ctrl = new AbortController();
    let stopped = false;
    let pause = 1000;
    const stop = (status) => {
      if (stopped) return;
      stopped = true;
      ctrl.abort();
      onStop?.(status);
    };
    (async () => {
      while (!stopped) {
        try {
          const res = await fetch(`/api/v1/stream?${query}`, {
            headers: { Authorization: `Bearer ${token() || ""}`, Accept: "text/event-stream" },
            signal: ctrl.signal,
            cache: "no-store",
          });
          if (res.status === 401 || res.status === 403 || res.status === 400) return stop(res.status);
          if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
          pause = 1000;
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          const state = { buf: "" };
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            for (const [name, data] of parseEvents(state, value)) {
              if (name === "end") return stop(401);
              onEvent(name, data);
            }
          }
        } catch (err) {
          if (stopped || err?.name === "AbortError") return;
        }
        await new Promise((r) => setTimeout(r, pause));
        pause = Math.min(pause * 2, 30_000);
      }
    })();
    return () => {
      stopped = true;
      ctrl.abort();
    };
  }

  window.fundguardStream = { open };
})();
