// The CPU backend: every op for any d, e >= 1 and deg 1..4, computed in fp64 (the readable
// reference the GPU backend is tested against). Host scratch is allocated here; nothing else is.
#pragma once

#include "api/problem.hpp"

namespace powerret::cpu {

void sympow(const detail::SympowProblem& problem);
void forward(const detail::ForwardProblem& problem);
void decode_step(const detail::DecodeProblem& problem);

}  // namespace powerret::cpu
