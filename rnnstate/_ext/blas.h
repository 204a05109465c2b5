// The Fortran BLAS entry points of torch's own libtorch_cpu, declared when setup.py found them there
// (RNNSTATE_DIRECT_BLAS). Calling them directly skips the dispatcher's per-step overhead, which is most
// of the cost of a step at small batch.
#pragma once

#ifdef RNNSTATE_DIRECT_BLAS
extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
            const int*, const float*, const int*, const float*, float*, const int*);
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*, const double*,
            const int*, const double*, const int*, const double*, double*, const int*);
void sgemv_(const char*, const int*, const int*, const float*, const float*, const int*, const float*, const int*,
            const float*, float*, const int*);
void dgemv_(const char*, const int*, const int*, const double*, const double*, const int*, const double*,
            const int*, const double*, double*, const int*);
}
#endif
