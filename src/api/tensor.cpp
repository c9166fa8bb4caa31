// Tensor helpers of the public API: element counts, contiguity, construction.
#include <cmath>

#include "powerret/powerret.hpp"

namespace powerret {

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return n;
}

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int i = ndim - 1; i >= 0; --i) {
    if (shape[i] != 1 && strides[i] != expected) return false;
    expected *= shape[i];
  }
  return true;
}

Tensor make_tensor(void* data, DType dtype, std::initializer_list<int64_t> shape, Device device) {
  Tensor t;
  t.data = data;
  t.dtype = dtype;
  t.device = device;
  if (shape.size() > static_cast<std::size_t>(kMaxRank))
    throw Error(ErrorKind::kValue, "make_tensor: rank " + std::to_string(shape.size()) +
                                       " exceeds the maximum " + std::to_string(kMaxRank));
  t.ndim = static_cast<int>(shape.size());
  int i = 0;
  for (int64_t s : shape) t.shape[i++] = s;
  int64_t stride = 1;
  for (int j = t.ndim - 1; j >= 0; --j) {
    t.strides[j] = stride;
    stride *= t.shape[j];
  }
  return t;
}

int64_t state_dim(int64_t d, int deg) {
  if (d < 1 || deg < 1) return 0;
  // C(d + deg - 1, deg), built incrementally: each partial product is itself a binomial.
  long double r = 1;
  for (int i = 1; i <= deg; ++i) r = r * static_cast<long double>(d + i - 1) / i;
  return static_cast<int64_t>(std::llround(r));
}

}  // namespace powerret
