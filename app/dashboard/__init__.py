"""The read side behind the pages: each view a page asks for, assembled from storage's rows and
the analysis' pure functions (summary and curves, gradients, shared-edge histograms,
percentiles, live progress, the form's limits and presets)."""
