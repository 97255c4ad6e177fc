// The runs table: one row per run with status, a progress bar (epoch and batch, ETA), last
// metrics, device, error, and Cancel / Retry. Rows that did not change are left alone, so
// keyboard focus on a button survives the live updates.
import { badge, el, fetchJSON, formatDuration, formatMetric, isNonFinite } from "./common.js";

function progressCell(run) {
  const fraction = typeof run.fraction === "number" ? run.fraction
    : Math.min(1, run.epochs > 0 ? run.epoch / run.epochs : 0);
  const words = [`epoch ${run.epoch} of ${run.epochs}`];
  if (run.status === "running" && run.batches > 0 && run.batch < run.batches) words.push(`batch ${run.batch}/${run.batches}`);
  const eta = run.status === "running" && run.eta_s !== null && run.eta_s !== undefined ? `about ${formatDuration(run.eta_s)} left` : null;
  const text = words.join(" · ");
  return el("td", { class: "progress-cell" },
    el("span", { text }),
    el("progress", { max: "1", value: String(fraction), "aria-label": `${text} (${Math.round(fraction * 100)} %)` }),
    eta ? el("span", { class: "muted eta", text: eta }) : null);
}

function metricCell(value, percent) {
  const td = el("td", { class: "num", text: formatMetric(value, 4, percent) });
  if (isNonFinite(value)) td.classList.add("diverged");
  return td;
}

function errorCell(run) {
  if (!run.error) return el("td", { class: "error-cell" });
  const text = String(run.error);
  const firstLine = text.split("\n").find((line) => line.trim()) ?? text;
  const cls = run.status === "failed" || run.status === "diverged" ? `error-cell ${run.status}` : "error-cell";
  if (firstLine === text && text.length <= 160) return el("td", { class: cls, text });
  return el("td", { class: cls }, el("details", {}, el("summary", { text: firstLine.slice(0, 160) }), el("pre", { text })));
}

/** Cancel (queued or running) or Retry (failed or cancelled); a run asked to stop says so until it has. */
function actionCell(run, label, onAction) {
  const act = (verb) => onAction(verb, run);
  if (run.status === "running" && run.cancel_requested) {
    return el("td", {}, el("span", { class: "muted", text: "stopping…" }));
  }
  if (run.status === "queued" || run.status === "running") {
    return el("td", {}, el("button", { type: "button", class: "small secondary", text: "Cancel",
                                       "aria-label": `Cancel run ${run.id} (${label}, seed ${run.seed})`, onclick: () => act("cancel") }));
  }
  if (run.status === "failed" || run.status === "cancelled") {
    return el("td", {}, el("button", { type: "button", class: "small secondary", text: "Retry",
                                       "aria-label": `Retry run ${run.id} (${label}, seed ${run.seed})`, onclick: () => act("retry") }));
  }
  return el("td");
}

/** POST a run's cancel or retry; returns an error message or null. */
export async function runAction(verb, run) {
  try {
    await fetchJSON(`/api/runs/${run.id}/${verb}`, { method: "POST" });
    return null;
  } catch (err) {
    return `Could not ${verb} run ${run.id}: ${err.message}`;
  }
}

/**
 * rows: [{run, label, colour, last}] in display order, where run merges the study's run
 * (device, host) with the live progress (fraction, eta_s, cancel_requested).
 */
export function renderRuns(tbody, rows, onAction) {
  const wanted = rows.map((row) => ({ ...row, signature: JSON.stringify([row.run, row.last, row.label, row.colour]) }));
  const current = [...tbody.rows];
  const sameOrder = current.length === wanted.length && current.every((tr, i) => tr.dataset.runId === String(wanted[i].run.id));
  const build = ({ run, label, colour, last, signature }) => {
    const tr = el("tr", { "data-run-id": String(run.id), "data-status": run.status },
      el("td", {}, el("span", { class: "swatch", style: `background:${colour}`, "aria-hidden": "true" }), label),
      el("td", { class: "num", text: String(run.seed) }),
      el("td", {}, badge(run.status)),
      progressCell(run),
      metricCell(last?.loss, false),
      metricCell(last?.val_loss, false),
      metricCell(last?.val_accuracy, true),
      el("td", { text: [run.device, run.worker_host].filter(Boolean).join(" @ ") || "–" }),
      errorCell(run),
      actionCell(run, label, onAction),
    );
    tr.signature = signature;
    return tr;
  };
  if (!sameOrder) {
    tbody.replaceChildren(...wanted.map(build));
    return;
  }
  wanted.forEach((item, i) => {
    if (current[i].signature !== item.signature) {
      const hadFocus = current[i].contains(document.activeElement);
      const row = build(item);
      current[i].replaceWith(row);
      if (hadFocus) row.querySelector("button")?.focus();
    }
  });
}
