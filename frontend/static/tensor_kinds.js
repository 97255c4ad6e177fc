// The tensor kinds a study records per layer (app/domain/layers.py: TENSOR_KINDS, then
// NORMALIZATION_KINDS for a normalized study), with the words each view uses for them: one
// table for the Tensor picker, the histogram grid's titles and the per-epoch view.
// `norms`: the normalizations whose layers have the kind (absent: every layer with a kernel).
export const TENSOR_KINDS = {
  kernel: { title: "Weight", heading: "Weights", words: "weights", option: "weights (kernel)" },
  bias: { title: "Bias", heading: "Biases", words: "biases", option: "biases" },
  gradient: { title: "Gradient", heading: "Gradients", words: "gradients", option: "gradients" },
  gamma: { title: "Normalization scale (gamma)", heading: "Normalization scales (gamma)", words: "gamma (scale)",
           option: "normalization scale (gamma)", norms: ["batchnorm", "layernorm"] },
  beta: { title: "Normalization offset (beta)", heading: "Normalization offsets (beta)", words: "beta (offset)",
          option: "normalization offset (beta)", norms: ["batchnorm", "layernorm"] },
  moving_mean: { title: "BatchNorm moving mean", heading: "BatchNorm moving means", words: "moving mean",
                 option: "BatchNorm moving mean", norms: ["batchnorm"] },
  moving_variance: { title: "BatchNorm moving variance", heading: "BatchNorm moving variances", words: "moving variance",
                     option: "BatchNorm moving variance", norms: ["batchnorm"] },
};

/** [kind, option text] for the Tensor picker of a study with this normalization ("none", "batchnorm", ...). */
export function tensorOptions(normalization) {
  return Object.entries(TENSOR_KINDS).filter(([, kind]) => !kind.norms || kind.norms.includes(normalization))
    .map(([id, kind]) => [id, kind.option]);
}
