// The live feed of a study: server-sent events from GET /api/studies/{id}/events.
// A stream's first "progress" carries every run's state; later ones are "partial": only the runs
// that changed and the running ones, which onProgress lays over what it has, by run id. "end" comes
// once every run has finished. The server closes a stream now and then on purpose and the feed
// reconnects after the "retry" delay, so the next event is the whole study again.
// It is read with fetch() rather than EventSource, which cannot send the Authorization
// header a server that guards its reads (INITLAB_READ_REQUIRES_TOKEN) asks for.
import { authFetch } from "./common.js";

/** Opens the stream; returns a handle with close(). Callbacks: onProgress(event), onEnd(), onState(text). */
export function openLiveStream(studyId, { onProgress, onEnd, onState }) {
  const abort = new AbortController();
  let ended = false;
  let retryMs = 1000;
  const stop = () => { ended = true; abort.abort(); };
  const handlers = {
    progress: (data) => onProgress(JSON.parse(data)),
    end: () => { stop(); onEnd(); },
  };
  const dispatch = (name, data) => {
    // A callback's error is reported, as EventSource would, and the feed goes on.
    try { handlers[name]?.(data); } catch (err) { setTimeout(() => { throw err; }); }
  };

  async function read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let name = "";
    let data = [];
    while (!ended) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const lines = buffer.split("\n");
      buffer = lines.pop();
      for (const raw of lines) {
        const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
        if (line === "") {  // a blank line ends an event
          if (data.length) dispatch(name || "message", data.join("\n"));
          name = "";
          data = [];
          if (ended) return;
          continue;
        }
        if (line.startsWith(":")) continue;  // a comment (keep-alive)
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") name = text;
        else if (field === "data") data.push(text);
        else if (field === "retry" && /^\d+$/.test(text)) retryMs = Number(text);
      }
    }
  }

  async function run() {
    while (!ended) {
      let response = null;
      try {
        response = await authFetch(`/api/studies/${studyId}/events`,
                                   { headers: { Accept: "text/event-stream" }, cache: "no-store", signal: abort.signal });
      } catch { /* unreachable: try again after the delay */ }
      if (ended) return;
      if (response) {
        if (!response.ok || !(response.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
          stop();  // like EventSource: an HTTP error (404, a refused token…) closes the feed for good
          onState("closed");
          return;
        }
        onState("live");
        try { await read(response.body); } catch { /* the connection dropped */ }
        if (ended) return;
      }
      onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  }

  run();
  return { close: stop };
}
