"""The shape of one run's network, as plain data: which layers, in which blocks, with which kernels.

One definition for everyone who needs the network without building it: the spec (names,
parameter count, limits), the memory estimate, the theory overlay (each kernel's shape and so
its fans) and the worker, which builds exactly these layers (worker/training/model.py).

A network is a stack of hidden *blocks*, then the output layer:

* an MLP's hidden layers are Dense; a CNN's are Conv2D (``kernel_size``², "same" padding,
  stride 1) on the 28×28×1 image, each block followed by 2×2 pooling (unless "none"), then
  the image is flattened and the Dense head (``hidden_units``, possibly empty) follows;
* a plain block is one layer: affine part → normalization (if any) → activation;
* with ``residual``, the first layer stays a plain block and the rest pair up into blocks of
  two, x → L₁ → N₁ → act → L₂ → N₂ (+ skip) → act, the skip being x itself or, where the
  shapes differ, a linear projection of x (a 1×1 convolution or a Dense layer, with a bias:
  every weighted layer has a kernel and a bias, so the recorder treats them all alike). A
  CNN's residual blocks are its convolutions; its Dense head stays plain, as does the output.
* a hidden layer followed by BatchNorm has no bias (as Keras's examples write it): BatchNorm
  subtracts the batch mean, so the bias's gradient is zero up to rounding, and Adam, which
  divides a gradient by its own running size, would turn that rounding into steps of the full
  learning rate (the bias would wander, differently in every group: fused ≠ alone).

Each hidden layer has a global index j (convolutions first, then the Dense head); it names the
layer's normalization (``bn_j``/``ln_j``), picks its kernel and bias seeds and its dropout
stream (app/domain/layers.py), and the output layer's seed index is the number of hidden
layers, so a plain MLP keeps exactly the seeds, names and order it always had.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from app.domain.layers import OUTPUT_LAYER

POOL = 2  # pooling window and stride
NORM_PREFIX = {"batchnorm": "bn", "layernorm": "ln"}


@dataclass(frozen=True)
class Weighted:
    """A layer with a kernel and a bias: a convolution, a Dense layer or a skip projection."""

    name: str
    kind: str  # "conv" or "dense"
    kernel_shape: tuple[int, ...]  # (kh, kw, c_in, c_out) or (in, out)
    seed_index: int  # the layer index its kernel and bias seeds derive from
    projection: bool = False
    bias: bool = True  # False before a BatchNorm, whose mean subtraction cancels any bias

    @property
    def units(self) -> int:
        return self.kernel_shape[-1]

    @property
    def parameters(self) -> int:
        return math.prod(self.kernel_shape) + (self.units if self.bias else 0)


@dataclass(frozen=True)
class Hidden:
    """One hidden layer: its weighted part, its normalization's name (None: none) and output size."""

    index: int
    layer: Weighted
    norm: str | None
    output_shape: tuple[int, ...]  # per sample: (h, w, c) or (units,)


@dataclass(frozen=True)
class Block:
    layers: tuple[Hidden, ...]  # one (plain) or two (residual)
    projection: Weighted | None = None  # the skip's projection where shapes differ
    residual: bool = False
    pooled_shape: tuple[int, ...] | None = None  # the output after pooling; None: no pooling


@dataclass(frozen=True)
class Architecture:
    blocks: tuple[Block, ...]
    output: Weighted
    normalization: str
    pooling: str

    @property
    def hidden(self) -> list[Hidden]:
        return [hidden for block in self.blocks for hidden in block.layers]

    def weighted(self) -> list[Weighted]:
        """Every layer with a kernel, in the order the network applies them (a block's projection last)."""
        found = []
        for block in self.blocks:
            found.extend(hidden.layer for hidden in block.layers)
            if block.projection is not None:
                found.append(block.projection)
        return [*found, self.output]

    def residual_ends(self) -> list[Hidden]:
        """The last layer of each residual block: what ``zero_init_residual`` starts at zero
        (its normalization's scale, or its kernel where there is no normalization)."""
        return [block.layers[-1] for block in self.blocks if block.residual]

    def parameter_count(self) -> int:
        """Weights, biases and the normalizations' scales and offsets (their moving statistics not counted)."""
        norms = sum(2 * hidden.output_shape[-1] for hidden in self.hidden if hidden.norm)
        return sum(layer.parameters for layer in self.weighted()) + norms

    def activation_values(self) -> int:
        """Values one sample's forward pass produces in the hidden layers (each output, pooled or not)."""
        total = 0
        for block in self.blocks:
            total += sum(math.prod(hidden.output_shape) for hidden in block.layers)
            if block.pooled_shape is not None:
                total += math.prod(block.pooled_shape)
        return total


def pooled(shape: tuple[int, int, int]) -> tuple[int, int, int]:
    return (shape[0] // POOL, shape[1] // POOL, shape[2])


def group_widths(widths: list[int], residual: bool) -> list[list[int]]:
    """Widths grouped into blocks: one each, or with ``residual`` the first alone and then pairs."""
    if not residual:
        return [[width] for width in widths]
    return [widths[:1], *[widths[start:start + 2] for start in range(1, len(widths), 2)]]


def build_architecture(*, family: str, image: tuple[int, int, int], classes: int, hidden_units: list[int],
                       conv_channels: list[int], kernel_size: int, pooling: str, normalization: str,
                       residual: bool) -> Architecture:
    """The network of a validated model block (residual stacks have an odd number of layers)."""
    prefix = NORM_PREFIX.get(normalization)
    blocks: list[Block] = []
    index = 0
    shape: tuple[int, ...] = (math.prod(image),) if family == "mlp" else tuple(image)

    def stack(kind: str, widths: list[int], with_residual: bool, pool: bool) -> None:
        nonlocal index, shape
        for group in group_widths(widths, with_residual):
            block_input, layers = shape, []
            for width in group:
                if kind == "conv":
                    kernel = (kernel_size, kernel_size, shape[-1], width)
                    out = (*shape[:2], width)
                else:
                    kernel, out = (shape[-1], width), (width,)
                name = f"{kind}_{sum(1 for b in blocks for h in b.layers if h.layer.kind == kind) + len(layers)}"
                weighted = Weighted(name, kind, kernel, index, bias=normalization != "batchnorm")
                layers.append(Hidden(index, weighted, f"{prefix}_{index}" if prefix else None, out))
                shape = out
                index += 1
            is_residual = len(layers) == 2
            projection = None
            if is_residual and block_input != shape:
                first = layers[0].index
                kernel = (1, 1, block_input[-1], shape[-1]) if kind == "conv" else (block_input[-1], shape[-1])
                projection = Weighted(f"proj_{first}", kind, kernel, first, projection=True)
            pooled_shape = None
            if pool:
                shape = pooled_shape = pooled(shape)
            blocks.append(Block(tuple(layers), projection, is_residual, pooled_shape))

    if family == "cnn":
        stack("conv", list(conv_channels), residual, pooling != "none")
        shape = (math.prod(shape),)
        stack("dense", list(hidden_units), False, False)
    else:
        stack("dense", list(hidden_units), residual, False)
    output = Weighted(OUTPUT_LAYER, "dense", (shape[-1], classes), index)
    return Architecture(tuple(blocks), output, normalization, pooling)


def pooled_blocks(conv_layers: int, residual: bool) -> int:
    """How many pooling steps a CNN of ``conv_layers`` convolutions takes (one per block)."""
    return len(group_widths([1] * conv_layers, residual))


def largest_pooling_steps(image_side: int) -> int:
    """How many 2×2 poolings an image side survives with at least one pixel left (28: 4)."""
    steps = 0
    while image_side // POOL >= 1:
        image_side //= POOL
        steps += 1
    return steps
