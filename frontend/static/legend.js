// The page's own legend: one button per initializer, in its colour. Pressing one shows that
// initializer alone on every chart; pressing it again shows all. Plotly's legends cannot be
// reached with a keyboard; these buttons can.
import { el } from "./common.js";

/** groups: [{key, label, formula}]; colours: Map; isolated: key|null; onIsolate(key). */
export function renderChips(container, groups, colours, isolated, onIsolate) {
  const signature = JSON.stringify([groups.map((g) => [g.key, g.label]), isolated]);
  if (container.dataset.signature === signature) return;
  const focused = document.activeElement?.dataset?.group;
  container.replaceChildren(...groups.map((group) => {
    const pressed = isolated === group.key;
    const dimmed = isolated !== null && !pressed;
    const button = el("button", {
      type: "button", class: `chip${dimmed ? " dimmed" : ""}`, "data-group": group.key,
      "aria-pressed": pressed ? "true" : "false", title: group.formula || group.label,
      onclick: () => onIsolate(group.key),
    }, el("span", { class: "swatch", style: `background:${colours.get(group.key)}`, "aria-hidden": "true" }), group.label);
    return button;
  }));
  container.dataset.signature = signature;
  if (focused) container.querySelector(`[data-group="${CSS.escape(focused)}"]`)?.focus();
}
