"""The science behind the study page, as pure functions over plain lists and numpy arrays.

Nothing here touches SQL, HTTP or a deep-learning backend, so each rule (how a histogram is
re-binned on shared edges, how seeds are aggregated, what "diverged" means) can be tested
with a handful of numbers.
"""
