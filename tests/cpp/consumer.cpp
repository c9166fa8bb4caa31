// C++ API check: power retention of a small random problem on the CPU through the installed
// library, against a direct evaluation of the attention form
//   y_i = sum_{j<=i} (s q_i.k_j)^p v_j / sum_{j<=i} (s q_i.k_j)^p       (no gating, b = h = 1)
// and a rejected call (wrong shape) that must throw powerret::Error and leave y untouched.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "powerret/powerret.hpp"

int main() {
  const int64_t t = 45, d = 6, e = 3;
  const int deg = 2;
  std::mt19937 gen(1234);
  std::normal_distribution<float> normal;
  std::vector<float> q(t * d), k(t * d), v(t * e), y(t * e, NAN);
  for (auto* x : {&q, &k, &v})
    for (float& a : *x) a = normal(gen);

  powerret::ForwardParams params{
      .q = powerret::make_tensor(q.data(), powerret::DType::kFloat32, {1, t, 1, d}),
      .k = powerret::make_tensor(k.data(), powerret::DType::kFloat32, {1, t, 1, d}),
      .v = powerret::make_tensor(v.data(), powerret::DType::kFloat32, {1, t, 1, e}),
      .y = powerret::make_tensor(y.data(), powerret::DType::kFloat32, {1, t, 1, e}),
      .deg = deg,
      .chunk_size = 16,
  };
  powerret::power_retention(params);

  const double s = 1.0 / std::sqrt(static_cast<double>(d));
  double err = 0, norm = 0;
  for (int64_t i = 0; i < t; ++i) {
    std::vector<double> num(e, 0.0);
    double den = 0;
    for (int64_t j = 0; j <= i; ++j) {
      double dot = 0;
      for (int64_t c = 0; c < d; ++c) dot += static_cast<double>(q[i * d + c]) * k[j * d + c];
      const double w = std::pow(s * dot, deg);
      den += w;
      for (int64_t c = 0; c < e; ++c) num[c] += w * v[j * e + c];
    }
    for (int64_t c = 0; c < e; ++c) {
      const double ref = num[c] / den;
      err += (y[i * e + c] - ref) * (y[i * e + c] - ref);
      norm += ref * ref;
    }
  }
  const double rel = std::sqrt(err / norm);
  std::printf("powerret %s: forward rel err %.3e\n", powerret::version(), rel);
  if (!(rel < 1e-5)) return 1;

  std::vector<float> before = y;
  params.v = powerret::make_tensor(v.data(), powerret::DType::kFloat32, {1, t, 2, e});  // wrong h
  try {
    powerret::power_retention(params);
    std::printf("expected an error for a wrong v shape\n");
    return 1;
  } catch (const powerret::Error& ex) {
    std::printf("rejected as expected: %s\n", ex.what());
    if (ex.kind() != powerret::ErrorKind::kValue) return 1;
  }
  for (int64_t i = 0; i < t * e; ++i)
    if (y[i] != before[i]) return 1;
  return 0;
}
