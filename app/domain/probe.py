"""A signal-propagation question: which untrained networks to push one probe batch through.

Seed 002's argument, measured before any training: the API accepts the question (with the
deployment's cost limits, app/schemas/diagnostics.py), a worker answers it with the very
networks a study with these ``model`` and ``dataset`` blocks would train
(worker/training/signal.py), one per initializer, all with the same seed and probe batch.
"""

from __future__ import annotations

import hashlib

from pydantic import Field, model_validator

from app.domain.registry import REGISTRY
from app.domain.blocks import field_error
from app.domain.spec import MAX_SEED, DatasetSpec, Initializer, InitializerRef, ModelSpec, NamesInitializers, RunSetup, StudySpec

MAX_PROBE_SAMPLES = 512
# Model fields the probe does not measure yet (worker/training/signal.py repeats a plain MLP's
# forward pass by hand), with the only value it takes; left out of the key at that value, so a
# question asked before they existed keeps its key.
PLAIN_MLP = {"family": "mlp", "conv_channels": None, "kernel_size": None, "pooling": None,
             "normalization": "none", "residual": False, "zero_init_residual": False}


class SignalProbeSpec(NamesInitializers):
    model: ModelSpec = Field(default_factory=ModelSpec, description="as in a study; dropout is off at inference")
    initializers: list[Initializer] = Field(min_length=1, max_length=len(REGISTRY),
                                            description="one network per initializer, all on the same probe batch")
    bias_initializer: Initializer = Field(default_factory=lambda: InitializerRef(id="zeros"))
    dataset: DatasetSpec = Field(default_factory=DatasetSpec,
                                 description="as in a study: the probe is drawn from its training subset")
    seed: int = Field(default=0, ge=0, le=MAX_SEED, description="the run seed: per-layer weights and the probe batch")
    probe_samples: int = Field(default=256, ge=2, le=MAX_PROBE_SAMPLES, description="probe batch size")

    @model_validator(mode="after")
    def _plain_mlp(self) -> "SignalProbeSpec":
        for name, plain in PLAIN_MLP.items():
            value = getattr(self.model, name)
            if value != plain:
                raise field_error(f"model.{name}", "the signal probe measures plain MLPs only for now (no cnn, "
                                                   "normalization or residual)", value)
        return self

    def setups(self) -> list[RunSetup]:
        """One run setup per initializer, as a study with these blocks would train them."""
        study = StudySpec(model=self.model, dataset=self.dataset, initializers=self.initializers,
                          bias_initializer=self.bias_initializer, seeds=[self.seed])
        return [study.setup(0, ref, self.seed) for ref in self.initializers]

    def key(self) -> str:
        """The same question always has the same key (the answer is exact and repeatable)."""
        return hashlib.sha256(self.model_dump_json(exclude={"model": set(PLAIN_MLP)}).encode()).hexdigest()
