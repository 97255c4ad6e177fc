// The verdict: one row per initializer (mean ± std over seeds), sortable by any column, and a
// sentence that says who leads. Diverged runs (NaN/∞ loss) are flagged, never hidden.
import { el, formatMeanStd } from "./common.js";

const COLUMNS = [
  { key: "label", text: "Initializer", value: (g) => g.label, cell: labelCell },
  { key: "runs", text: "Runs", value: (g) => g.table.runs, cell: runsCell },
  { key: "final_val_accuracy", text: "Final val. accuracy", num: true, percent: true },
  { key: "best_val_accuracy", text: "Best val. accuracy", num: true, percent: true },
  { key: "best_epoch", text: "Epoch of best", num: true, digits: 1 },
  { key: "final_val_loss", text: "Final val. loss", num: true, low: true },
  { key: "seconds_per_epoch", text: "s / epoch", num: true, digits: 2, low: true },
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
  const parts = [`${t.succeeded} of ${t.runs} done`];
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
    head.append(el("tr", {}, ...COLUMNS.map((column) => el("th", { scope: "col", class: column.num ? "num" : "", "data-key": column.key },
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

/** "He uniform leads: 97.8 % ± 0.1 final validation accuracy over 3 seeds. Last: Zeros, 11.4 %." */
export function verdictSentence(view) {
  const scored = view.groups.filter((g) => g.table.final_val_accuracy.mean !== null);
  if (!scored.length) return "No epoch has finished yet: the verdict appears after the first one.";
  const sorted = [...scored].sort((a, b) => b.table.final_val_accuracy.mean - a.table.final_val_accuracy.mean);
  const best = sorted[0];
  const stat = best.table.final_val_accuracy;
  let text = `${best.label} leads: ${formatMeanStd(stat, { percent: true })} final validation accuracy`
    + (stat.n > 1 ? ` over ${stat.n} seeds` : "") + ".";
  if (sorted.length > 1) {
    const worst = sorted.at(-1);
    text += ` Last: ${worst.label}, ${formatMeanStd(worst.table.final_val_accuracy, { percent: true })}.`;
  }
  const diverged = view.groups.filter((g) => g.table.diverged);
  if (diverged.length) text += ` Diverged (NaN/∞ loss): ${diverged.map((g) => `${g.label} (${g.table.diverged})`).join(", ")}.`;
  if (view.groups.some((g) => g.table.active)) text += " Runs are still training, so this may change.";
  return text;
}
