// The workers panel (frontend/templates/workers_section.html): every worker process from
// GET /api/workers, refreshed while the page is open. A page without the panel loads nothing.
import { el, fetchJSON, refreshMs } from "./common.js";

const $ = (id) => document.getElementById(id);
// The badge colours the status styles already have: training as running, lost as failed.
const STATE_STYLE = { training: "running", idle: "queued", lost: "failed", stopped: "cancelled" };

function stateBadge(state) {
  return el("span", { class: `badge status-${STATE_STYLE[state] ?? "queued"}`, text: state });
}

function age(seconds) {
  if (!Number.isFinite(seconds)) return "–";
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

function training(worker) {
  if (!worker.current_runs.length) return document.createTextNode("–");
  const runs = `${worker.current_runs.length === 1 ? "run" : "runs"} ${worker.current_runs.join(", ")}`;
  if (worker.current_study == null) return document.createTextNode(runs);
  return el("span", {}, el("a", { href: `/studies/${worker.current_study}`, text: `study ${worker.current_study}` }),
    `: ${runs}`);
}

function row(worker) {
  const device = [worker.device, worker.backend].filter(Boolean).join(" · ") || "–";
  return el("tr", { "data-worker": worker.name, "data-state": worker.state },
    el("td", { text: worker.host }),
    el("td", { text: `${worker.name} (pid ${worker.pid})` }),
    el("td", {}, stateBadge(worker.state)),
    el("td", { text: worker.queues.join(", ") }),
    el("td", { text: device }),
    el("td", {}, training(worker)),
    el("td", {}, el("time", { datetime: worker.last_heartbeat, title: worker.last_heartbeat,
      text: age(worker.heartbeat_age_s) })),
  );
}

async function loadWorkers() {
  const status = $("workers-status");
  const table = $("workers-table");
  let answer;
  try {
    answer = await fetchJSON("/api/workers");
  } catch (err) {
    status.textContent = `Could not load the workers: ${err.message}. Retrying…`;
    status.hidden = false;
    setTimeout(loadWorkers, Math.max(refreshMs(), 5000));
    return;
  }
  table.tBodies[0].replaceChildren(...answer.workers.map(row));
  table.hidden = answer.workers.length === 0;
  const live = answer.workers.filter((w) => w.state === "training" || w.state === "idle").length;
  status.textContent = answer.workers.length
    ? `${live} of ${answer.workers.length} live; queues served: ${answer.queues.join(", ") || "none"} (a study without a queue goes to “${answer.default_queue}”).`
    : `No worker has reported yet: studies wait in the queue “${answer.default_queue}” until one starts.`;
  status.hidden = false;
  setTimeout(loadWorkers, Math.max(refreshMs(), 3000));
}

if ($("workers-table")) loadWorkers();
