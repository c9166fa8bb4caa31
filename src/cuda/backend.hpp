// The CUDA backend's host entry points. Called by src/api/ only after validation; every function
// here launches kernels on `stream` and returns without synchronising the host. A launch error
// throws powerret::Error(kRuntime) naming the kernel.
#pragma once

#include <cstddef>

#include "api/problem.hpp"

namespace powerret::cuda {

// Whether the GPU backend computes this (d, e, deg): d, e in {32, 64, 128} with deg in {1, 2};
// d in {16, 32}, e in {32, 64, 128} with deg in {3, 4}.
bool supports(int64_t d, int64_t e, int deg);
// A text naming the supported set, for error messages.
const char* supported_text();
// Chunk sizes the GPU forward accepts (ascending), and their count.
const int* chunk_sizes(int* count);
int default_chunk(const detail::ForwardProblem& problem);

std::size_t forward_workspace_bytes(const detail::ForwardProblem& problem);
void sympow(const detail::SympowProblem& problem, void* stream);
void forward(const detail::ForwardProblem& problem, void* stream);
void decode_step(const detail::DecodeProblem& problem, void* stream);

}  // namespace powerret::cuda
