// The home page: the study list (filter by name, pick studies to compare; refreshed often while
// something trains, every few refreshes otherwise, never while the tab is hidden) and the form
// that creates a study (presets, checks before sending).
import { ACTIVE_STATUSES, badge, el, fetchJSON, formatCounts, formatTime, pageTimer, refreshMs } from "./common.js";
import { validateStudy } from "./form_rules.js";
import { initializerItem } from "./initializer_picker.js";
import { clearErrors, fillForm, readForm, showErrors } from "./study_form.js";

const $ = (id) => document.getElementById(id);
const form = $("study-form");
const formError = $("form-error");
const submitButton = $("submit-study");
const selected = new Set();
// variants: the last preset's, when it stands for linked studies (one per variant, compared side by side).
const choices = { initializers: [], datasets: [], limits: null, variants: [] };
const listTimer = pageTimer(loadStudies, loadStudies);  // shown again: ask at once
let listToken = 0;
// The API's page size (GET /api/studies: at most 500, newest first), the pages shown (Show more
// adds one), and the most studies /compare takes.
const PAGE = 500;
const MAX_COMPARE = 12;
let pagesShown = 1;

// ---- study list -------------------------------------------------------------------------------

function updateCompareButton() {
  const button = $("compare-selected");
  button.disabled = selected.size < 2 || selected.size > MAX_COMPARE;
  button.textContent = selected.size ? `Compare selected studies (${selected.size})` : "Compare selected studies";
  $("compare-hint").textContent = selected.size > MAX_COMPARE
    ? `At most ${MAX_COMPARE} studies side by side: untick ${selected.size - MAX_COMPARE}.`
    : "Tick two or more studies to compare them side by side.";
}

/** The newest ``pages`` pages of studies (one request a page); ``more``: the last page was full. */
async function fetchStudies(filter, pages) {
  const studies = [];
  for (let page = 0; page < pages; page += 1) {
    const query = new URLSearchParams({ limit: String(PAGE), offset: String(page * PAGE) });
    if (filter) query.set("name", filter);
    const rows = await fetchJSON(`/api/studies?${query}`);
    studies.push(...rows);
    if (rows.length < PAGE) return { studies, more: false };
  }
  return { studies, more: true };
}

async function loadStudies() {
  listTimer.cancel();
  const token = ++listToken;
  const status = $("studies-status");
  const table = $("studies-table");
  const filter = $("study-filter").value.trim();
  let studies, more;
  try {
    ({ studies, more } = await fetchStudies(filter, pagesShown));
  } catch (err) {
    status.textContent = `Could not load the studies: ${err.message}. Retrying…`;
    status.hidden = false;
    if (token === listToken) listTimer.after(Math.max(refreshMs(), 5000));
    return;
  }
  if (token !== listToken) return; // the filter changed meanwhile
  const focused = document.activeElement?.dataset?.studyId;
  table.tBodies[0].replaceChildren(...studies.map((study) => el("tr", { "data-study-id": String(study.id) },
    el("td", {}, el("input", {
      type: "checkbox", "data-study-id": String(study.id), checked: selected.has(study.id),
      "aria-label": `Select ${study.name} for comparison`,
      onchange: (event) => { if (event.target.checked) selected.add(study.id); else selected.delete(study.id); updateCompareButton(); },
    })),
    el("td", {}, el("a", { href: `/studies/${study.id}`, text: study.name })),
    el("td", {}, badge(study.status)),
    el("td", { text: formatCounts(study.run_counts) }),
    el("td", {}, el("time", { datetime: study.created_at, text: formatTime(study.created_at) })),
  )));
  if (focused) table.querySelector(`input[data-study-id="${focused}"]`)?.focus();
  table.hidden = studies.length === 0;
  status.textContent = studies.length ? "" : (filter ? `No study's name contains “${filter}”.` : "No studies yet: create one below.");
  status.hidden = studies.length > 0;
  $("studies-more").hidden = !more;
  $("studies-more-note").textContent = more
    ? `The newest ${studies.length} studies${filter ? " whose name matches" : ""}; older ones follow.` : "";
  scheduleList(studies.some((study) => ACTIVE_STATUSES.has(study.status)));
}

/**
 * Ask again: soon while a study trains, at a slower pace otherwise (a study created from the CLI
 * or the API still shows up), and not at all while the tab is hidden (visibilitychange resumes).
 */
function scheduleList(active) {
  listTimer.after(active ? refreshMs() : Math.max(refreshMs() * 5, 1000));
}

$("study-filter").addEventListener("input", () => { pagesShown = 1; listTimer.after(200); });
$("studies-more").addEventListener("click", () => { pagesShown += 1; loadStudies(); });
$("compare-selected").addEventListener("click", () => {
  window.location.assign(`/compare?ids=${[...selected].sort((a, b) => a - b).join(",")}`);
});

// ---- form choices -----------------------------------------------------------------------------

async function loadDatasets() {
  const select = $("f-dataset");
  const description = $("dataset-description");
  choices.datasets = await fetchJSON("/api/datasets");
  select.replaceChildren(...choices.datasets.map((d) => el("option", { value: d.id, text: d.name })));
  const describe = () => {
    const d = choices.datasets.find((item) => item.id === select.value);
    description.textContent = d ? `${d.description ?? ""} ${d.train_size} training / ${d.test_size} test images.` : "";
  };
  select.addEventListener("change", describe);
  describe();
}

async function loadInitializers() {
  choices.initializers = await fetchJSON("/api/initializers");
  $("initializer-list").replaceChildren(...choices.initializers.map((init) => initializerItem(init)));
  $("f-bias").replaceChildren(...choices.initializers.filter((i) => !i.kernel_only)
    .map((i) => el("option", { value: i.id, text: i.name, selected: i.id === "zeros" })));
  $("f-output-init").append(...choices.initializers.map((i) => el("option", { value: i.id, text: i.name })));
  $("initializer-list").addEventListener("change", updateRunCount);
  $("f-seeds").addEventListener("input", updateRunCount);
  $("f-linked").addEventListener("change", updateRunCount);
  updateRunCount();
}

async function loadPresets() {
  const presets = await fetchJSON("/api/presets");
  $("preset-buttons").replaceChildren(...presets.map((preset) => el("button", {
    type: "button", class: "secondary small", "data-preset": preset.id, title: preset.description, text: preset.name,
    onclick: () => {
      fillForm(form, preset.study);
      showVariants(preset.variants ?? []);
      for (const item of form.querySelectorAll(".initializer")) item.dispatchEvent(new Event("change"));
      clearErrors(form, formError);
      updateRunCount();
      $("f-name").focus();
    },
  })));
}

/** A preset of linked studies: offer to create one study per variant (ticked by default). */
function showVariants(variants) {
  choices.variants = variants;
  $("linked").hidden = !variants.length;
  $("f-linked").checked = true;
  $("linked-label").textContent = `as ${variants.length} linked studies, one per variant (`
    + `${variants.map((v) => v.label).join(" / ")}), opened side by side on the compare page`;
}

/** The bodies to POST: the form's study, or one per variant of a linked preset (name suffixed, model overlaid). */
function variantBodies(body) {
  if (!choices.variants.length || !$("f-linked").checked) return [body];
  return choices.variants.map((variant) => ({
    ...body, name: `${body.name} — ${variant.label}`, model: { ...body.model, ...variant.model } }));
}

function updateRunCount() {
  const body = readForm(form, choices.initializers);
  const studies = variantBodies(body).length;
  const seeds = body.seeds.filter((s) => typeof s === "number").length;
  const cells = (body.activations?.length ?? 1) * (body.depths?.length ?? 1);
  const picked = body.weight_variances
    ? body.weight_variances.length * (body.bias_variances?.length ?? 1) : body.initializers.length;
  const what = body.weight_variances ? "variance choice(s)" : "initializer(s)";
  $("run-count").textContent = `${picked} ${what} × ${seeds} seed(s)${cells > 1 ? ` × ${cells} grid cells` : ""}`
    + `${studies > 1 ? ` × ${studies} linked studies` : ""} = ${picked * seeds * cells * studies} run(s)`;
}

// ---- submit -----------------------------------------------------------------------------------

async function submit(event) {
  event.preventDefault();
  clearErrors(form, formError);
  const bodies = variantBodies(readForm(form, choices.initializers));
  for (const body of choices.limits ? bodies : []) {
    const problems = validateStudy(body, choices.limits, choices.datasets, choices.initializers);
    if (problems.length) {
      const n = problems.length;
      showErrors(form, formError, problems, body, `Please fix ${n} problem${n === 1 ? "" : "s"} before creating the study; see the marked fields.`);
      return;
    }
  }
  submitButton.disabled = true;
  submitButton.textContent = "Creating…";
  const created = [];
  try {
    for (const body of bodies) {
      const study = await fetchJSON("/api/studies", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      });
      created.push(study.id);
    }
    window.location.assign(created.length > 1 ? `/compare?ids=${created.join(",")}` : `/studies/${created[0]}`);
    return;
  } catch (err) {
    const already = created.length ? ` (created before it: study ${created.join(", ")})` : "";
    if (err.status === 422 && err.body && Array.isArray(err.body.detail)) {
      showErrors(form, formError, err.body.detail, bodies[created.length]);
      if (already) formError.textContent += already;
    } else {
      formError.textContent = `The study was not created: ${err.message}${already}`;
      formError.hidden = false;
      formError.focus();
    }
  }
  submitButton.disabled = false;
  submitButton.textContent = "Create study";
}

form.addEventListener("submit", submit);
updateCompareButton();
loadStudies();
Promise.all([loadDatasets(), loadInitializers(), loadPresets(),
             fetchJSON("/api/limits").then((limits) => { choices.limits = limits; })]).then(() => {
  form.setAttribute("data-ready", "true"); // not form.dataset: the form has a control named "dataset"
}).catch((err) => {
  formError.textContent = `Could not load the form's choices: ${err.message}. Reload the page to try again.`;
  formError.hidden = false;
});
