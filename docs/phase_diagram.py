"""Reproduce the README's phase diagram: the "Edge of chaos" preset, trained and photographed.

Starts ``initlab up`` on a fresh state dir (as docs/make_screenshots.py does), submits
examples/edge-of-chaos.json (the form's preset: tanh, width 100, σ_b² = 0.05, σ_w² 0.5 to 4,
depths 5 to 100, seeds 0 and 1), waits for every run, prints the wall time, the measured
grid and both critical values, and photographs the phase page in Debian's Chromium
(docs/screenshots/phase_diagram.png).

    INITLAB_DATA_DIR=../shared/datasets .venv/bin/python docs/phase_diagram.py
"""

from __future__ import annotations

import json

from make_screenshots import OUT, ROOT, chromium, http, running_app, train

PRESET = json.loads((ROOT / "examples" / "edge-of-chaos.json").read_text())


def report(base: str, study_id: int) -> None:
    for metric in ("accuracy", "val_accuracy"):
        view = json.loads(http("GET", f"{base}/api/studies/{study_id}/phase?metric={metric}")[0])
        means = {(cell["weight_variance"], cell["depth"]): cell["mean"] for cell in view["cells"]}
        print(f"{metric}: depth \\ σ_w² " + " ".join(f"{w:>6}" for w in view["weight_variances"]))
        for depth in view["depths"]:
            print(f"{depth:>18} " + " ".join(f"{means[(w, depth)]:6.3f}" for w in view["weight_variances"]))
        (theory,), (edge,) = view["theory"], view["edges"]
        predicted = {point["weight_variance"]: point["xi_c"] * theory["c"] for point in theory["points"]}
        print(f"  trainable depth (≥ {edge['threshold']:.3f}):", dict(zip(edge["weight_variance"], edge["trainable_depth"])))
        print(f"  {theory['c']:g}·ξ_c:", {w: round(d, 1) for w, d in predicted.items()})
        print(f"  σ_w*: predicted {theory['critical_weight_variance']:.3f}, measured "
              f"{edge['critical_weight_variance']} (tie {edge['critical_range']})")


def shoot(base: str, study_id: int) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(f"{base}/studies/{study_id}/phase")
        page.wait_for_function("() => document.getElementById('phase').dataset.ready === 'true'", timeout=60000)
        page.wait_for_timeout(1000)
        page.locator("#phase").screenshot(path=str(OUT / "phase_diagram.png"))
    print("screenshot:", OUT / "phase_diagram.png")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with running_app() as base:
        study = train(base, PRESET)
        report(base, study["id"])
        shoot(base, study["id"])


if __name__ == "__main__":
    main()
