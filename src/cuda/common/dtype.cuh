// dtype: element loads and stores through fp32 for the input dtypes fp16, bf16 and fp32.
//   to_float(x)      == x.float()          exact
//   from_float<T>(x) == x.to(T)            round to nearest even (NaN and Inf kept)
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace powerret::cuda {

__device__ __forceinline__ float to_float(float x) { return x; }                        // x
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }         // x.float()
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }  // x.float()

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {  // x
  return x;
}
template <>
__device__ __forceinline__ __half from_float<__half>(float x) {  // x.half()
  return __float2half_rn(x);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) {  // x.bfloat16()
  return __float2bfloat16_rn(x);
}

}  // namespace powerret::cuda
