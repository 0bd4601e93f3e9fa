// Mirrors transformers' _compute_default_rope_parameters, _compute_linear_scaling_rope_parameters and
// _compute_llama3_parameters. Every tensor there is float32; python scalars are cast to float32 when they
// meet one, and `scalar / tensor` is evaluated by torch as `tensor.reciprocal() * scalar`.
#include "rope.h"

#include <cmath>

namespace kvs {

std::vector<float> ropeInvFreq(const RopeConfig& rope, int headDim) {
  const int half = headDim / 2;
  std::vector<float> inv(half);
  // inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
  for (int i = 0; i < half; ++i) {
    float expo = static_cast<float>(2 * i) / static_cast<float>(headDim);
    float p = static_cast<float>(std::pow(static_cast<double>(static_cast<float>(rope.theta)), static_cast<double>(expo)));
    inv[i] = 1.0f / p;
  }
  if (rope.kind == RopeKind::Linear) {
    const float f = static_cast<float>(rope.factor);
    for (float& x : inv) x = x / f;
  } else if (rope.kind == RopeKind::Llama3) {
    const float factor = static_cast<float>(rope.factor);
    const float low = static_cast<float>(rope.lowFreqFactor);
    const double oldLen = rope.originalMaxPositions;
    const float lowWavelen = static_cast<float>(oldLen / rope.lowFreqFactor);
    const float highWavelen = static_cast<float>(oldLen / rope.highFreqFactor);
    const float twoPi = static_cast<float>(2 * M_PI);
    const float span = static_cast<float>(rope.highFreqFactor - rope.lowFreqFactor);
    for (float& x : inv) {
      float wavelen = (1.0f / x) * twoPi;
      float llama = wavelen > lowWavelen ? x / factor : x;
      float smooth = ((1.0f / wavelen) * static_cast<float>(oldLen) - low) / span;
      float smoothed = (1.0f - smooth) * llama / factor + smooth * llama;
      bool medium = !(wavelen < highWavelen) && !(wavelen > lowWavelen);
      x = medium ? smoothed : llama;
    }
  }
  return inv;
}

void ropeCosSin(const std::vector<float>& invFreq, int position, float* cosOut, float* sinOut) {
  const float pos = static_cast<float>(position);
  for (size_t i = 0; i < invFreq.size(); ++i) {
    float f = pos * invFreq[i];
    cosOut[i] = std::cos(f);
    sinOut[i] = std::sin(f);
  }
}

void ropeApply(float* x, int headDim, const float* cos, const float* sin) {
  const int half = headDim / 2;
  for (int i = 0; i < half; ++i) {
    float a = x[i], b = x[i + half];
    x[i] = a * cos[i] - b * sin[i];
    x[i + half] = b * cos[i] + a * sin[i];
  }
}

}  // namespace kvs
