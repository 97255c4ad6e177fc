// The verdict: one row per initializer (mean ± sample std over seeds), sortable by any column, and a
// sentence that says who leads (per grid cell; nobody when every run diverged or the best means tie).
// Diverged runs (NaN/∞ loss) are flagged, never hidden; their finite accuracies stay in the means.
import { el, formatMeanStd } from "./common.js";

const COLUMNS = [
  { key: "label", text: "Initializer", value: (g) => g.label, cell: labelCell },
  { key: "runs", text: "Runs", value: (g) => g.table.runs, cell: runsCell },
  { key: "final_val_accuracy", text: "Final val. accuracy", num: true, percent: true },
  { key: "best_val_accuracy", text: "Best val. accuracy", num: true, percent: true },
  { key: "best_epoch", text: "Epoch of best", num: true, digits: 1 },
  { key: "final_val_loss", text: "Final val. loss", num: true, low: true },
  { key: "seconds_per_epoch", text: "s / epoch", num: true, digits: 2, low: true,
    title: "Wall time of an epoch of the group the run trained in: runs fused into one model share it, "
      + "so it measures the group's size and the machine, not the initializer" },
  { key: "diverged", text: "Diverged", num: true, value: (g) => g.table.diverged, cell: divergedCell },
];

function labelCell(group, colour) {
  return el("td", {},
    el("span", { class: "swatch", style: `background:${colour}`, "aria-hidden": "true" }),
    el("span", { title: group.formula || "", text: group.label }),
    group.table.leader ? el("span", { class: "leader", text: "leads" }) : null);
}

function runsCell(group) {
  const t = group.table;
  // Done = finished, whatever the outcome (succeeded, diverged, failed, cancelled: app/domain/lifecycle.py
  // TERMINAL_STATUSES); only queued and running runs are not. A diverged run is a finding, not an unfinished run.
  const parts = [`${t.runs - t.active} of ${t.runs} done`];
  if (t.active) parts.push(`${t.active} active`);
  return el("td", { text: parts.join(" · ") });
}

function divergedCell(group) {
  const t = group.table;
  return t.diverged
    ? el("td", { class: "num diverged", text: `${t.diverged} of ${t.runs}` })
    : el("td", { class: "num muted", text: "none" });
}

const sortValue = (column, group) => (column.value ? column.value(group) : group.table[column.key]?.mean ?? null);

/** Sort state lives on the table element, so re-rendering with fresh data keeps the user's order. */
export function renderSummary(table, view, colours) {
  const state = table.sortState ?? (table.sortState = { key: null, descending: true });
  const head = table.tHead;
  if (!head.rows.length) {
    head.append(el("tr", {}, ...COLUMNS.map((column) => el("th", { scope: "col", class: column.num ? "num" : "", "data-key": column.key, title: column.title },
      el("button", { type: "button", class: "sort", text: column.text,
                     onclick: () => { state.descending = state.key === column.key ? !state.descending : !column.low;
                                      state.key = column.key; renderSummary(table, table.lastView, table.lastColours); } })))));
  }
  table.lastView = view;
  table.lastColours = colours;
  for (const th of head.rows[0].cells) {
    th.setAttribute("aria-sort", th.dataset.key === state.key ? (state.descending ? "descending" : "ascending") : "none");
  }
  const groups = [...view.groups];
  const column = COLUMNS.find((c) => c.key === state.key);
  if (column) {
    groups.sort((a, b) => {
      const x = sortValue(column, a);
      const y = sortValue(column, b);
      if (x === null || y === null) return (x === null) - (y === null);
      const order = typeof x === "string" ? x.localeCompare(y) : x - y;
      return state.descending ? -order : order;
    });
  }
  table.tBodies[0].replaceChildren(...groups.map((group) => el("tr", { "data-group": group.key, class: group.table.leader ? "leader-row" : "" },
    ...COLUMNS.map((c) => (c.cell ? c.cell(group, colours.get(group.key))
      : el("td", { class: "num", text: formatMeanStd(group.table[c.key], { percent: c.percent, digits: c.digits ?? 4 }) }))))));
}

/** The label without its grid cell ("He normal · tanh · 3 layers" in cell "tanh · 3 layers": "He normal"). */
export const shortLabel = (group) => (group.cell && group.label.endsWith(` · ${group.cell}`)
  ? group.label.slice(0, -` · ${group.cell}`.length) : group.label);

/** One cell's verdict: who leads (the server's ``table.leader``), or why no one does. */
function cellSentence(cell, scored) {
  const sorted = [...scored].sort((a, b) => b.table.final_val_accuracy.mean - a.table.final_val_accuracy.mean);
  const where = cell ? `${cell}: ` : "";
  const best = sorted.find((g) => g.table.leader);
  if (best) {
    const stat = best.table.final_val_accuracy;
    let text = `${where}${shortLabel(best)} leads: ${formatMeanStd(stat, { percent: true })} final validation accuracy`
      + (stat.n > 1 ? ` over ${stat.n} seeds` : "") + ".";
    if (sorted.length > 1) {
      const worst = sorted.at(-1);
      text += ` Last: ${shortLabel(worst)}, ${formatMeanStd(worst.table.final_val_accuracy, { percent: true })}.`;
    }
    return text;
  }
  const top = sorted[0].table.final_val_accuracy;
  const score = formatMeanStd(top, { percent: true });
  if (sorted.length === 1) {
    return `${where}${shortLabel(sorted[0])}: ${score} final validation accuracy`
      + (top.n > 1 ? ` over ${top.n} seeds` : "") + `, the only initializer${cell ? " in this cell" : ""}: nothing to lead.`;
  }
  if (scored.some((g) => g.table.active)) {
    // The lead is decided on finished runs only, as the statistics are (app/analysis/summary.py mark_leader).
    return `${where}No initializer leads yet: the lead is decided on finished runs (highest mean so far: `
      + `${shortLabel(sorted[0])}, ${score}).`;
  }
  if (scored.every((g) => !g.table.undiverged)) {
    return `${where}No initializer leads: every run diverged (NaN/∞ loss); the accuracies shown are where the `
      + `diverged networks ended (${formatMeanStd(top, { percent: true })} at best).`;
  }
  const tied = sorted.filter((g) => Math.abs(g.table.final_val_accuracy.mean - top.mean) <= 1e-9);
  if (tied.length > 1) {
    return `${where}No initializer leads: ${tied.map(shortLabel).join(", ")} have the same mean final validation `
      + `accuracy (${formatMeanStd(top, { percent: true })}).`;
  }
  if (!sorted[0].table.undiverged) {
    return `${where}No initializer leads: the highest mean (${shortLabel(sorted[0])}, ${score}) `
      + "comes only from diverged runs.";
  }
  return `${where}No initializer leads: the initializers have no finished seed in common (failed or cancelled `
    + "runs are not results), so their means would not compare like with like.";
}

/**
 * "He uniform leads: 97.8 % ± 0.1 final validation accuracy over 3 seeds. Last: Zeros, 11.4 %."; in a grid study
 * one such sentence per cell (a lead across cells would compare different networks).
 */
export function verdictSentence(view) {
  const scored = view.groups.filter((g) => g.table.final_val_accuracy.mean !== null);
  if (!scored.length) {
    if (!studyFinished(view)) return "No epoch has finished yet: the verdict appears after the first one.";
    return recordedEpochs(view) ? "No initializer leads: no run recorded a finite validation accuracy (the runs diverged)."
      : noEpochReason(view);
  }
  const cells = new Map();
  for (const group of scored) {
    const cell = group.cell ?? "";
    if (!cells.has(cell)) cells.set(cell, []);
    cells.get(cell).push(group);
  }
  let text = [...cells].map(([cell, groups]) => cellSentence(cell, groups)).join(" ");
  const diverged = view.groups.filter((g) => g.table.diverged);
  if (diverged.length) text += ` Diverged (NaN/∞ loss): ${diverged.map((g) => `${g.label} (${g.table.diverged})`).join(", ")}.`;
  if (view.groups.some((g) => g.table.active)) text += " Runs are still training, so this may change.";
  return text;
}

/** No run of the study is queued or running (a /summary answer): what is missing now stays missing. */
export const studyFinished = (view) => view.groups.length > 0 && view.groups.every((g) => !g.table.active);

/** Some group recorded at least one epoch. */
export const recordedEpochs = (view) => view.groups.some((g) => g.curves.epochs.length);

/** Why a finished study recorded no epoch, from its runs' statuses (the runs table has their errors). */
export function noEpochReason(view) {
  const statuses = (view.runs ?? []).map((run) => run.status);
  const every = (status) => statuses.length && statuses.every((s) => s === status);
  const how = every("failed") ? "every run failed" : every("cancelled") ? "every run was cancelled"
    : "every run ended before its first epoch";
  return `No epoch was recorded: ${how} (see the runs table).`;
}
