"""A signal-propagation question: which untrained networks to push one probe batch through.

Seed 002's argument, measured before any training: the API accepts the question (with the
deployment's cost limits, app/schemas/diagnostics.py), a worker answers it with the very
networks a study with these ``model`` and ``dataset`` blocks would train
(worker/training/signal.py), one per initializer, all with the same seed and probe batch.
"""

from __future__ import annotations

import hashlib

from pydantic import Field, model_validator

from app.domain.blocks import field_error
from app.domain.registry import REGISTRY
from app.domain.spec import MAX_SEED, DatasetSpec, Initializer, InitializerRef, ModelSpec, NamesInitializers, RunSetup, StudySpec

MAX_PROBE_SAMPLES = 512
# Model fields added after the probe first answered (it measured plain MLPs only), at the values
# those questions had: left out of the key at these values, so a question asked before they
# existed keeps its key and its stored answer.
PLAIN_MLP = {"family": "mlp", "conv_channels": None, "kernel_size": None, "pooling": None,
             "normalization": "none", "residual": False, "zero_init_residual": False}


class SignalProbeSpec(NamesInitializers):
    model: ModelSpec = Field(default_factory=ModelSpec, description="as in a study; dropout is off, BatchNorm normalizes on the probe batch's statistics")
    initializers: list[Initializer] = Field(min_length=1, max_length=len(REGISTRY),
                                            description="one network per initializer, all on the same probe batch")
    bias_initializer: Initializer = Field(default_factory=lambda: InitializerRef(id="zeros"))
    dataset: DatasetSpec = Field(default_factory=DatasetSpec,
                                 description="as in a study: the probe is drawn from its training subset")
    seed: int = Field(default=0, ge=0, le=MAX_SEED, description="the run seed: per-layer weights and the probe batch")
    probe_samples: int = Field(default=256, ge=2, le=MAX_PROBE_SAMPLES, description="probe batch size")

    @model_validator(mode="after")
    def _no_dropout(self) -> "SignalProbeSpec":
        """The probe reads the network a step sees at init, never a dropped-out one: a dropout asked for would be
        silently ignored, so it is refused."""
        if self.model.dropout:
            raise field_error("model.dropout", "the probe measures the untrained network without dropout: leave "
                                               "it out (or 0)", self.model.dropout)
        return self

    def study(self) -> StudySpec:
        """The one-seed study whose runs' networks this question probes (its limits are a study's)."""
        return StudySpec(model=self.model, dataset=self.dataset, initializers=self.initializers,
                         bias_initializer=self.bias_initializer, seeds=[self.seed])

    def setups(self) -> list[RunSetup]:
        """One run setup per initializer, as a study with these blocks would train them."""
        study = self.study()
        return [study.setup(0, ref, self.seed) for ref in self.initializers]

    def key(self) -> str:
        """The same question always has the same key (the answer is exact and repeatable)."""
        unchanged = {name for name, plain in PLAIN_MLP.items() if getattr(self.model, name) == plain}
        return hashlib.sha256(self.model_dump_json(exclude={"model": unchanged}).encode()).hexdigest()
