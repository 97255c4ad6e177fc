// The live feed of a study: server-sent events from GET /api/studies/{id}/events.
// "progress" carries every run's state; "end" comes once every run has finished. The server
// closes a stream now and then on purpose and EventSource reconnects by itself.

/** Opens the stream; returns a handle with close(). Callbacks: onProgress(snapshot), onEnd(), onState(text). */
export function openLiveStream(studyId, { onProgress, onEnd, onState }) {
  const source = new EventSource(`/api/studies/${studyId}/events`);
  let ended = false;
  source.addEventListener("progress", (event) => onProgress(JSON.parse(event.data)));
  source.addEventListener("end", () => {
    ended = true;
    source.close();
    onEnd();
  });
  source.addEventListener("open", () => onState("live"));
  source.addEventListener("error", () => {
    if (ended) return;
    onState(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
  });
  return { close: () => { ended = true; source.close(); } };
}
