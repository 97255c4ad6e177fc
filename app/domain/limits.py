"""How much one study may ask of a deployment, checked once: when the study is accepted.

The limits are the deployment's (``INITLAB_MAX_*``, app/settings.py); a study accepted under
them trains even if an operator lowers them later. Each problem names the field to change.
One of them is memory: a study whose single run would not fit in one worker's memory
(``INITLAB_WORKER_MEMORY``; the estimate is app/domain/memory.py's) is refused, since its
worker would only be killed by the kernel, again and again, until the run failed.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.domain.memory import group_memory, largest_batch_that_fits, size
from app.domain.spec import StudySpec


@dataclass(frozen=True)
class StudyLimits:
    max_hidden_layers: int
    max_hidden_units: int
    max_epochs: int
    max_runs_per_study: int
    max_seeds: int
    max_train_samples: int
    max_parameters: int
    worker_memory: int | None = None  # bytes one training worker may use; None: not checked
    max_conv_layers: int = 16
    max_conv_channels: int = 256


def limit_problems(spec: StudySpec, limits: StudyLimits) -> list[tuple[str, str]]:
    """(dotted field, message) for every limit the spec exceeds; empty when it fits."""
    problems: list[tuple[str, str]] = []
    units = spec.model.hidden_units
    if len(units) > limits.max_hidden_layers:
        problems.append(("model.hidden_units", f"at most {limits.max_hidden_layers} hidden layers (INITLAB_MAX_HIDDEN_LAYERS)"))
    if units and max(units) > limits.max_hidden_units:
        problems.append(("model.hidden_units", f"at most {limits.max_hidden_units} units per layer (INITLAB_MAX_HIDDEN_UNITS)"))
    deepest = max((len(spec.hidden_units_for(depth)) for depth in spec.depths or []), default=0)
    if deepest > limits.max_hidden_layers:  # a residual depth d builds 2d - 1 layers
        problems.append(("depths", f"at most {limits.max_hidden_layers} hidden layers (INITLAB_MAX_HIDDEN_LAYERS); "
                                   f"depth {max(spec.depths)} builds {deepest}"))
    channels = spec.model.conv_channels or []
    if len(channels) > limits.max_conv_layers:
        problems.append(("model.conv_channels", f"at most {limits.max_conv_layers} conv layers (INITLAB_MAX_CONV_LAYERS)"))
    if channels and max(channels) > limits.max_conv_channels:
        problems.append(("model.conv_channels",
                         f"at most {limits.max_conv_channels} channels per conv layer (INITLAB_MAX_CONV_CHANNELS)"))
    if channels and spec.depths and max(len(spec.conv_channels_for(depth)) for depth in spec.depths) > limits.max_conv_layers:
        problems.append(("depths", f"at most {limits.max_conv_layers} conv layers (INITLAB_MAX_CONV_LAYERS)"))
    if spec.training.epochs > limits.max_epochs:
        problems.append(("training.epochs", f"at most {limits.max_epochs} epochs (INITLAB_MAX_EPOCHS)"))
    if len(spec.seeds) > limits.max_seeds:
        problems.append(("seeds", f"at most {limits.max_seeds} seeds (INITLAB_MAX_SEEDS)"))
    train = spec.dataset.train_samples
    if train is not None and train > limits.max_train_samples:
        problems.append(("dataset.train_samples",
                         f"at most {limits.max_train_samples} training samples (INITLAB_MAX_TRAIN_SAMPLES)"))
    runs = len(spec.runs())
    if runs > limits.max_runs_per_study:
        problems.append(("initializers", f"{runs} runs (initializers x seeds x activations x depths) exceed the limit "
                                         f"of {limits.max_runs_per_study} (INITLAB_MAX_RUNS_PER_STUDY)"))
    if not problems:
        parameters = max(spec.parameter_count(depth) for _, depth in spec.grid())
        if parameters > limits.max_parameters:
            field = "depths" if spec.depths else "model.conv_channels" if channels else "model.hidden_units"
            problems.append((field, f"the model has {parameters:,} parameters, more than the limit of "
                                    f"{limits.max_parameters:,} (INITLAB_MAX_PARAMETERS)"))
    if not problems and limits.worker_memory:
        problems.extend(memory_problems(spec, limits.worker_memory))
    return problems


def memory_problems(spec: StudySpec, memory: int) -> list[tuple[str, str]]:
    """What to reduce when one run of a cell cannot fit in a worker's ``memory`` bytes (at most one problem).

    Runs of a cell that fit alone can always be trained: dispatch makes their groups small
    enough. The batch size is named first, with the largest that fits, because the
    activations of a batch are what grows fastest; then the layers, when even a batch of
    one does not fit; then the deployment itself, when the process and the data set alone
    exceed the memory.
    """
    depths = sorted({depth for _, depth in spec.grid()}, key=lambda depth: -spec.parameter_count(depth))
    for depth in depths:
        one = group_memory(spec, 1, depth)
        if one.total <= memory:
            continue
        budget = f"a worker has {size(memory)} (INITLAB_WORKER_MEMORY)"
        if one.fixed + one.data >= memory:
            return [("dataset", f"{budget}, less than it needs before training anything: the worker process and "
                                f"the {spec.dataset.name} data set take about {size(one.fixed + one.data)}; raise "
                                "INITLAB_WORKER_MEMORY or run fewer workers (INITLAB_WORKER_CONCURRENCY)")]
        batch = largest_batch_that_fits(spec, memory, depth)
        needs = (f"one run needs about {size(one.total)} of memory (weights, gradients and optimizer state "
                 f"{size(one.run.parameters)}, the activations of one batch {size(one.run.activations)}, the "
                 f"statistics of its largest layer {size(one.statistics)}, the data set {size(one.data)}, the "
                 f"worker process {size(one.fixed)}) but {budget}")
        if batch >= 1:
            return [("training.batch_size", f"{needs}: reduce training.batch_size to at most {batch}")]
        field = "depths" if spec.depths else "model.hidden_units"
        return [(field, f"{needs}; even with a batch of 1 it does not fit: use fewer or narrower hidden layers")]
    return []
