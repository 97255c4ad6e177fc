// Client-side checks of a study before it is sent, against the very bounds the API enforces:
// GET /api/limits serves the JSON-schema constraints of StudyCreate with the INITLAB_MAX_*
// settings folded in, and GET /api/initializers each parameter's rule (the registry's own,
// worker/training/param_rules.py), so the form and the server cannot disagree. The server
// stays the judge (rules between two numbers, such as minval < maxval, are only checked
// there); this saves a round trip and says what is wrong while the user is still looking.

const isInt = (v) => typeof v === "number" && Number.isInteger(v);
const isNum = (v) => typeof v === "number" && Number.isFinite(v);

/** Problems of one value against one field's constraints, in the server's words where it can. */
function check(field, value, rule, out) {
  if (value === null || value === undefined) {
    if (!rule.nullable) out.push({ field, msg: "Field required" });
    return;
  }
  if (rule.type === "integer" && !isInt(value)) { out.push({ field, msg: "Input should be a valid integer" }); return; }
  if (rule.type === "number" && !isNum(value)) { out.push({ field, msg: "Input should be a valid number" }); return; }
  if (rule.type === "string" && typeof value !== "string") { out.push({ field, msg: "Input should be a valid string" }); return; }
  if (rule.type === "array") {
    if (!Array.isArray(value)) { out.push({ field, msg: "Input should be a valid list" }); return; }
    if (rule.minItems !== undefined && value.length < rule.minItems) {
      out.push({ field, msg: `List should have at least ${rule.minItems} item${rule.minItems === 1 ? "" : "s"}` });
    }
    if (rule.maxItems !== undefined && value.length > rule.maxItems) out.push({ field, msg: `at most ${rule.maxItems} items` });
    if (rule.items) value.forEach((item, i) => check(`${field}.${i}`, item, rule.items, out));
    return;
  }
  if (rule.enum && !rule.enum.includes(value)) out.push({ field, msg: `Input should be one of ${rule.enum.join(", ")}` });
  if (typeof value === "string") {
    if (rule.minLength !== undefined && value.length < rule.minLength) out.push({ field, msg: `String should have at least ${rule.minLength} character(s)` });
    if (rule.maxLength !== undefined && value.length > rule.maxLength) out.push({ field, msg: `String should have at most ${rule.maxLength} characters` });
    return;
  }
  if (rule.minimum !== undefined && value < rule.minimum) out.push({ field, msg: `Input should be greater than or equal to ${rule.minimum}` });
  if (rule.exclusiveMinimum !== undefined && value <= rule.exclusiveMinimum) out.push({ field, msg: `Input should be greater than ${rule.exclusiveMinimum}` });
  if (rule.maximum !== undefined && value > rule.maximum) out.push({ field, msg: `Input should be less than or equal to ${rule.maximum}` });
  if (rule.exclusiveMaximum !== undefined && value >= rule.exclusiveMaximum) out.push({ field, msg: `Input should be less than ${rule.exclusiveMaximum}` });
}

/** An initializer choice's parameters against the catalog's rules, with the server's field names. */
function checkInitializer(field, ref, catalog, out) {
  if (!ref || typeof ref === "string" || !ref.params) return;
  const entry = catalog.find((item) => item.id === ref.id);
  if (!entry) return; // an unknown id: the server names it
  const unknown = Object.keys(ref.params).filter((name) => !(name in (entry.params || {}))).sort();
  if (unknown.length) {
    out.push({ field, msg: `initializer '${ref.id}' has no parameter(s) ${unknown.join(", ")}` });
    return;
  }
  const merged = { ...entry.params, ...ref.params };
  for (const [name, value] of Object.entries(ref.params)) {
    const rule = entry.rules?.[name] ?? { type: "number" };
    const where = `${field}.params.${name}`;
    if (value === null && !rule.nullable) { out.push({ field: where, msg: `must be a ${rule.type}` }); continue; }
    if (typeof value === "number" && rule.exclusiveMinimum === 0 && value <= 0) out.push({ field: where, msg: "must be positive (> 0)" });
    else check(where, value, rule, out);
  }
  for (const [name, rule] of Object.entries(entry.rules || {})) {
    for (const [other, allowed] of Object.entries(rule.only_with || {})) {
      if (merged[name] !== null && merged[name] !== undefined && !allowed.includes(merged[other])) {
        out.push({ field: `${field}.params.${name}`, msg: `${name} applies only when ${other} is ${allowed.join(" or ")}` });
      }
    }
  }
}

const get = (body, path) => path.split(".").reduce((node, key) => (node === undefined || node === null ? undefined : node[key]), body);

/**
 * Every problem of a study body: [{field, msg}], the shape of the API's 422 detail, so the same
 * code puts them next to their fields. limits: GET /api/limits; datasets: GET /api/datasets;
 * catalog: GET /api/initializers.
 */
export function validateStudy(body, limits, datasets = [], catalog = []) {
  const out = [];
  (Array.isArray(body.initializers) ? body.initializers : []).forEach((ref, i) => checkInitializer(`initializers.${i}`, ref, catalog, out));
  checkInitializer("bias_initializer", body.bias_initializer, catalog, out);
  checkInitializer("model.output_initializer", body.model?.output_initializer, catalog, out);
  for (const [field, rule] of Object.entries(limits.fields)) {
    const value = get(body, field);
    if (value === undefined) continue; // left to its default on the server
    check(field, value, rule, out);
  }
  const settings = limits.settings;
  const seeds = Array.isArray(body.seeds) ? body.seeds : [];
  if (new Set(seeds).size !== seeds.length) out.push({ field: "seeds", msg: "seeds must be distinct" });
  const inits = Array.isArray(body.weight_variances)
    ? body.weight_variances.length * (Array.isArray(body.bias_variances) ? body.bias_variances.length : 1)
    : Array.isArray(body.initializers) ? body.initializers.length : 0;
  const cells = (Array.isArray(body.activations) ? body.activations.length : 1) * (Array.isArray(body.depths) ? body.depths.length : 1);
  if (inits * seeds.length * cells > settings.max_runs_per_study) {
    out.push({ field: "seeds", msg: `${inits * seeds.length * cells} runs (initializers x seeds x activations x depths) exceed the limit of ${settings.max_runs_per_study}` });
  }
  const dataset = datasets.find((d) => d.id === body.dataset?.name);
  const units = body.model?.hidden_units;
  // The MLP's count only (a CNN's, a normalized or residual net's is the server's to make).
  const plain = !body.model?.family && !body.model?.normalization && !body.model?.residual;
  if (plain && settings.max_parameters && dataset && Array.isArray(units) && units.every(isInt)) {
    const widths = [dataset.input_dim, ...units, dataset.num_classes];
    const parameters = widths.slice(1).reduce((sum, width, i) => sum + widths[i] * width + width, 0);
    if (parameters > settings.max_parameters) {
      out.push({ field: "model.hidden_units", msg: `the model has ${parameters.toLocaleString("en")} parameters, more than the limit of ${settings.max_parameters.toLocaleString("en")}` });
    }
  }
  return out;
}
