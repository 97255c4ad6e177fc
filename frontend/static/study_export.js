// The study page's Export section: the study as CSV, JSON or a zipped TensorBoard log directory
// (GET /api/studies/{id}/export). They are plain links, so the browser streams the file to disk.
// A link cannot send the Authorization header, though: when an API token is stored (a server
// with INITLAB_READ_REQUIRES_TOKEN), the file is fetched with the token and saved from a blob.
import { authFetch, el, storedToken } from "./common.js";

const FORMATS = [
  { format: "csv", label: "CSV", what: "long form, one value per row: per-epoch metrics, layer statistics and histogram bins" },
  { format: "json", label: "JSON", what: "everything in one document, with each tensor's quantiles" },
  { format: "tensorboard", label: "TensorBoard (zip)", what: "one folder per run with scalars and histograms; unzip, then run tensorboard --logdir on the folder" },
];

const section = document.getElementById("export-section");
const body = document.getElementById("export-body");

function exportUrl(studyId, format, histograms) {
  return `/api/studies/${studyId}/export?format=${format}${histograms ? "" : "&histograms=false"}`;
}

/** The server's file name from Content-Disposition, or a fallback. */
function fileName(response, fallback) {
  const match = /filename="?([^";]+)"?/.exec(response.headers.get("Content-Disposition") || "");
  return match ? match[1] : fallback;
}

async function saveWithToken(link, say) {
  say(`Preparing ${link.dataset.label}…`);
  const response = await authFetch(link.href);
  if (!response.ok) {
    say(`Could not export: ${response.status} ${response.statusText}.`, true);
    return;
  }
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const name = fileName(response, `initlab-study.${link.dataset.format}`);
  const anchor = el("a", { href: url, download: name, hidden: true });
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  say(`Saved ${name} (${(blob.size / 1024).toFixed(1)} kB).`);
}

/** Build the section once (links only: nothing in it changes while the study trains). */
export function renderExport(studyId) {
  if (!section || !body) return;
  const status = el("p", { id: "export-status", class: "muted", role: "status", "aria-live": "polite" });
  const say = (text, error = false) => {
    status.textContent = text;
    status.className = error ? "diverged" : "muted";
  };
  const histograms = el("input", { type: "checkbox", id: "export-histograms", checked: true });
  const links = FORMATS.map(({ format, label }) => el("a", {
    id: `export-${format}`, href: exportUrl(studyId, format, true), download: "", "data-format": format, "data-label": label,
  }, label));
  const list = el("ul", { class: "export-list" }, ...FORMATS.map((item, i) => el("li", {}, links[i], " — ", el("span", { class: "hint" }, item.what))));
  histograms.addEventListener("change", () => {
    links.forEach((link) => { link.href = exportUrl(studyId, link.dataset.format, histograms.checked); });
  });
  for (const link of links) {
    link.addEventListener("click", (event) => {
      if (!storedToken()) return;  // no token: the plain link, streamed by the browser
      event.preventDefault();
      saveWithToken(link, say).catch((err) => say(`Could not export: ${err.message}.`, true));
    });
  }
  body.replaceChildren(
    list,
    el("div", { class: "field inline checkbox" }, histograms, el("label", { for: "export-histograms", text: "Include histograms (the largest part; without them also no quantiles)" })),
    el("p", { class: "hint", text: "NaN and ±Infinity of diverged runs are kept: as NaN, Infinity, -Infinity in CSV cells, as the strings \"NaN\", \"Infinity\", \"-Infinity\" in JSON, and as such in TensorBoard's scalars. An export taken while runs train holds the epochs recorded so far." }),
    status,
  );
  section.hidden = false;
}

