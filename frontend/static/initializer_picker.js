// The initializer list both forms show (a new study, the signal probe): one checkbox per registry
// entry with its formula and a control per parameter, read back as ids or {id, params} references.
import { el } from "./common.js";

/** A number input: blank -> null, a number -> Number, anything else as typed (the server rejects it). */
export function numberOrNull(input) {
  const raw = input.value.trim();
  if (raw === "") return input.validity && input.validity.badInput ? "not a number" : null;
  const value = Number(raw);
  return Number.isFinite(value) ? value : raw;
}

/** One parameter's control, from its rule in the catalog: a list for words, a number box otherwise. */
function paramControl(init, name, value, prefix) {
  const rule = init.rules?.[name] ?? { type: "number" };
  const attrs = { id: `${prefix}param-${init.id}-${name}`, "data-param": name, "aria-label": `${name} of ${init.name}` };
  if (rule.type === "string" && Array.isArray(rule.enum)) {
    return el("select", { ...attrs, "data-default": String(value) },
      ...rule.enum.map((option) => el("option", { value: option, text: option, selected: option === value })));
  }
  const blank = rule.nullable ? { placeholder: "default", title: "leave blank for the default" } : {};
  return el("input", { ...attrs, ...blank, type: "number", step: "any", value: value === null ? "" : String(value),
                       min: rule.exclusiveMinimum ?? rule.minimum, max: rule.maximum });
}

/** A parameter that applies only with certain values of another (clip σ: a truncated normal) is off otherwise. */
function applyOnlyWith(item, init) {
  for (const [name, rule] of Object.entries(init.rules || {})) {
    const control = item.querySelector(`[data-param="${name}"]`);
    for (const [other, allowed] of Object.entries(rule.only_with || {})) {
      const off = !allowed.includes(item.querySelector(`[data-param="${other}"]`)?.value);
      control.disabled = off;
      if (off) control.value = "";
    }
  }
}

/** One registry entry's row; ``prefix`` keeps ids apart where a page has two lists. */
export function initializerItem(init, prefix = "") {
  const id = `${prefix}init-${init.id}`;
  const params = Object.entries(init.params || {}).map(([name, value]) => el("span", { class: "param" },
    el("label", { for: `${prefix}param-${init.id}-${name}`, text: name }), paramControl(init, name, value, prefix)));
  const item = el("div", { class: "initializer", "data-initializer": init.id },
    el("input", { type: "checkbox", id, name: "initializers", value: init.id, "aria-describedby": `${id}-formula` }),
    el("div", { class: "initializer-text" },
      el("label", { for: id, text: init.name }),
      el("code", { id: `${id}-formula`, class: "formula", text: init.formula, title: init.reference || "" }),
      params.length ? el("span", { class: "params" }, ...params) : null));
  if (Object.values(init.rules || {}).some((rule) => rule.only_with)) {
    item.addEventListener("change", () => applyOnlyWith(item, init));
    applyOnlyWith(item, init);
  }
  return item;
}

/** The ticked entries under ``container``: an id where every parameter is its default, else {id, params}. */
export function chosenInitializers(container, catalog) {
  const chosen = [...container.querySelectorAll(".initializer")].filter((item) => item.querySelector("input[type=checkbox]").checked);
  return chosen.map((item) => {
    const id = item.dataset.initializer;
    const defaults = catalog.find((c) => c.id === id)?.params ?? {};
    const params = {};
    let changed = false;
    for (const control of item.querySelectorAll("[data-param]")) {
      // A list holds words (the custom initializer's distribution, mode); a blank box is null (its default).
      const value = control.tagName === "SELECT" ? control.value : numberOrNull(control);
      params[control.dataset.param] = value;
      if (value !== (defaults[control.dataset.param] ?? null)) changed = true;
    }
    return changed ? { id, params } : id;
  });
}
