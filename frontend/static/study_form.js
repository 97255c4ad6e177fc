// The new-study form: reading it into the POST /api/studies body, filling it from a preset,
// and placing errors (the server's 422, or the same checks run before sending) by their fields.
import { problemText } from "./common.js";
import { chosenInitializers, numberOrNull } from "./initializer_picker.js";

/** "128, 64" -> [128, 64]; a token that is not an integer is sent as typed so the server names it. */
export function parseList(text) {
  return String(text).split(/[\s,;]+/).filter(Boolean).map((t) => (/^[+-]?\d+$/.test(t) ? Number(t) : t));
}


export function readForm(form, catalog) {
  const $ = (id) => form.querySelector(`#${id}`);
  const initializers = chosenInitializers(form, catalog);
  const weights = optionalNumbers($("f-weight-variances")?.value ?? "");
  const biases = optionalNumbers($("f-bias-variances")?.value ?? "");
  const sweep = weights ? {
    weight_variances: weights, bias_variances: biases,
    scaled_initializer: { distribution: $("f-scaled-distribution").value, mode: "fan_in" },
  } : {};
  // Bias variances alone are sent too, so the server's 422 ("applies only with weight_variances")
  // marks that field instead of the study quietly becoming a plain one.
  const stray = !weights && biases ? { bias_variances: biases } : {};
  return {
    name: $("f-name").value.trim() || "untitled study",
    dataset: {
      name: $("f-dataset").value,
      train_samples: numberOrNull($("f-train-samples")),
      validation_samples: numberOrNull($("f-val-samples")),
    },
    model: {
      hidden_units: parseList($("f-hidden").value),
      activation: $("f-activation").value,
      dropout: numberOrNull($("f-dropout")),
      output_initializer: $("f-output-init").value || null,
      ...familyFields($),
    },
    training: {
      optimizer: $("f-optimizer").value,
      learning_rate: numberOrNull($("f-lr")),
      batch_size: numberOrNull($("f-batch")),
      epochs: numberOrNull($("f-epochs")),
    },
    ...(weights ? sweep : { initializers, ...stray }),
    bias_initializer: $("f-bias").value || "zeros",
    seeds: parseList($("f-seeds").value),
    activations: optionalList($("f-activations").value),
    depths: optionalList($("f-depths").value),
  };
}

/** The model's family, normalization and skips, sent only where they differ from the plain MLP's defaults. */
function familyFields($) {
  const extra = {};
  if (!$("f-family")) return extra;
  if ($("f-family").value === "cnn") {
    Object.assign(extra, { family: "cnn", conv_channels: parseList($("f-conv").value), pooling: $("f-pooling").value });
  }
  if ($("f-normalization").value !== "none") extra.normalization = $("f-normalization").value;
  if ($("f-residual").value !== "false") extra.residual = true;
  if ($("f-residual").value === "zero") extra.zero_init_residual = true;
  return extra;
}

/** A list of numbers: blank -> null; a token that is not a number is sent as typed so the server names it. */
function optionalNumbers(text) {
  const items = String(text).split(/[\s,;]+/).filter(Boolean).map((t) => (Number.isFinite(Number(t)) ? Number(t) : t));
  return items.length ? items : null;
}

/** A grid field: blank -> null (no grid on that axis), else the list. */
function optionalList(text) {
  const items = parseList(text);
  return items.length ? items : null;
}

export function clearErrors(form, summary) {
  for (const node of form.querySelectorAll(".field-error")) node.textContent = "";
  for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  summary.replaceChildren();
  summary.hidden = true;
}

/** The error slot for a dotted field path: the longest data-field that is a prefix of it. */
function slotFor(form, field) {
  let best = null;
  for (const slot of form.querySelectorAll(".field-error[data-field]")) {
    const key = slot.dataset.field;
    if ((field === key || field.startsWith(`${key}.`)) && (!best || key.length > best.dataset.field.length)) best = slot;
  }
  return best;
}

/** What the rest of a field path points at, in words: "for he_normal", "for custom, mode", "item 2", "stddev". */
function describeRest(field, rest, body) {
  const init = /^initializers\.(\d+)(?:\.params\.(\w+))?/.exec(field);
  if (init) {
    const ref = body?.initializers?.[Number(init[1])];
    if (!ref) return rest;
    return `for ${typeof ref === "string" ? ref : ref.id}${init[2] ? `, ${init[2]}` : ""}`;
  }
  return /^\d+$/.test(rest) ? `item ${Number(rest) + 1}` : rest;
}

/** Fill the form from a study body (a preset); initializers given with parameters get them filled in. */
export function fillForm(form, study) {
  const $ = (id) => form.querySelector(`#${id}`);
  const set = (id, value) => { $(id).value = value === null || value === undefined ? "" : String(value); };
  const refId = (ref) => (typeof ref === "string" ? ref : ref?.id ?? "");
  set("f-name", study.name);
  set("f-dataset", study.dataset?.name);
  $("f-dataset").dispatchEvent(new Event("change"));
  set("f-train-samples", study.dataset?.train_samples);
  set("f-val-samples", study.dataset?.validation_samples);
  set("f-hidden", (study.model?.hidden_units ?? []).join(","));
  set("f-activation", study.model?.activation ?? "relu");
  set("f-dropout", study.model?.dropout ?? 0);
  if ($("f-family")) {
    set("f-family", study.model?.family ?? "mlp");
    set("f-conv", (study.model?.conv_channels ?? []).join(","));
    set("f-pooling", study.model?.pooling ?? "max");
    set("f-normalization", study.model?.normalization ?? "none");
    set("f-residual", study.model?.zero_init_residual ? "zero" : study.model?.residual ? "true" : "false");
  }
  set("f-output-init", refId(study.model?.output_initializer));
  set("f-optimizer", study.training?.optimizer ?? "adam");
  set("f-lr", study.training?.learning_rate ?? 0.001);
  set("f-batch", study.training?.batch_size ?? 128);
  set("f-epochs", study.training?.epochs ?? 10);
  const chosen = new Map((study.initializers ?? []).map((ref) => [refId(ref), typeof ref === "string" ? {} : ref.params ?? {}]));
  for (const item of form.querySelectorAll(".initializer")) {
    const params = chosen.get(item.dataset.initializer);
    item.querySelector("input[type=checkbox]").checked = params !== undefined;
    for (const control of item.querySelectorAll("[data-param]")) {
      const given = params && control.dataset.param in params ? params[control.dataset.param] : undefined;
      const fallback = control.tagName === "SELECT" ? control.dataset.default : control.defaultValue;
      control.value = given === undefined ? fallback : given === null ? "" : String(given);
    }
  }
  set("f-bias", refId(study.bias_initializer) || "zeros");
  set("f-seeds", (study.seeds ?? [0]).join(", "));
  set("f-activations", (study.activations ?? []).join(", "));
  set("f-depths", (study.depths ?? []).join(", "));
  if ($("f-weight-variances")) {
    set("f-weight-variances", (study.weight_variances ?? []).join(", "));
    set("f-bias-variances", (study.bias_variances ?? []).join(", "));
    set("f-scaled-distribution", study.scaled_initializer?.distribution ?? "normal");
  }
}

/**
 * Put each message next to its field; anything without a field goes to the summary at the top.
 * lead: the summary's first sentence (who found the problems: the server, or the form itself).
 */
export function showErrors(form, summary, detail, body, lead = null) {
  const loose = [];
  let first = null;
  for (const item of detail) {
    const field = String(item.field ?? "body");
    const message = problemText(item, "invalid");
    const slot = slotFor(form, field);
    if (!slot) { loose.push(`${field}: ${message}`); continue; }
    const rest = field.slice(slot.dataset.field.length + 1);
    const text = rest ? `${message} (${describeRest(field, rest, body)})` : message;
    slot.textContent = slot.textContent ? `${slot.textContent} ${text}` : text;
    const control = form.querySelector(`[aria-describedby~="${slot.id}"]`);
    if (control) {
      control.setAttribute("aria-invalid", "true");
      const focusable = control.matches("fieldset") ? control.querySelector("input") : control;
      first = first || focusable;
    }
  }
  const count = detail.length;
  summary.append(lead ?? `The server rejected the study (${count} problem${count === 1 ? "" : "s"}); see the marked fields.`);
  if (loose.length) {
    const list = document.createElement("ul");
    for (const text of loose) {
      const li = document.createElement("li");
      li.textContent = text;
      list.append(li);
    }
    summary.append(list);
  }
  summary.hidden = false;
  (first && !loose.length ? first : summary).focus?.();
}
