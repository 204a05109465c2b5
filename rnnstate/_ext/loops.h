// Pieces every time loop of _C.cpp and backward.cpp shares.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdint>

// The thread controls of the OpenMP runtime and of MKL that torch itself loads (libtorch_cpu's
// dependencies, resolved at load time; weak: null where torch has no OpenMP or no MKL, e.g. OpenBLAS
// builds, and StepThreads then leaves the threads as they are). Linux (ELF weak references) only;
// elsewhere StepThreads does nothing and rnnstate.loop.threads limits the threads around the call.
#if defined(__linux__)
#define RNNSTATE_STEP_THREADS 1
extern "C" {
int omp_get_max_threads(void) __attribute__((weak));
void omp_set_num_threads(int) __attribute__((weak));
int MKL_Set_Num_Threads_Local(int) __attribute__((weak));
}
#endif

namespace rnnstate_ext {

// Per-step work (multiply-adds of the recurrent GEMM, B * G * U) below which a time loop runs its steps
// on the calling thread only: there a step's fork/join costs about what its threads save, and on a busy
// machine a descheduled thread stalls every step for a scheduler slice. Larger steps keep the caller's
// threads; rnnstate.loop.threads decides those per call (single-threaded while it measures contention).
// Same threshold as rnnstate.loop.threads.PARALLEL_MIN_STEP_MACS.
constexpr int64_t kParallelStepMacs = int64_t(1) << 18;

// For its lifetime, the calling thread's OpenMP parallel regions (at::parallel_for, oneDNN) and MKL
// calls (the per-step sgemm) use one thread, when the per-step work is below kParallelStepMacs.
// Thread-local settings only (OpenMP's nthreads ICV of this thread, MKL's C-interface
// MKL_Set_Num_Threads_Local; its lower-case name is the Fortran one, taking a pointer), so other
// threads and the process-wide torch.get_num_threads() are untouched once it ends.
class StepThreads {
 public:
  explicit StepThreads(int64_t step_macs) {
#ifdef RNNSTATE_STEP_THREADS
    if (step_macs >= kParallelStepMacs || omp_get_max_threads == nullptr || omp_set_num_threads == nullptr) return;
    at::get_num_threads();                  // torch's lazy per-thread init first, so it can't undo ours
    prev_ = omp_get_max_threads();
    if (prev_ <= 1) { prev_ = 0; return; }
    omp_set_num_threads(1);
    if (MKL_Set_Num_Threads_Local != nullptr) prev_mkl_ = MKL_Set_Num_Threads_Local(1);
#else
    (void)step_macs;
#endif
  }
  ~StepThreads() {
#ifdef RNNSTATE_STEP_THREADS
    if (prev_ == 0) return;
    omp_set_num_threads(prev_);
    if (MKL_Set_Num_Threads_Local != nullptr) MKL_Set_Num_Threads_Local(prev_mkl_);   // 0: MKL's global again
#endif
  }
  StepThreads(const StepThreads&) = delete;
  StepThreads& operator=(const StepThreads&) = delete;

 private:
  int prev_ = 0, prev_mkl_ = 0;
};

// Below this many elements per step the pointwise pass runs on one thread (fork/join costs more).
constexpr int64_t kGrain = 4096;

// One step's pointwise pass over the flat (B, U) range: body(begin, end) on one thread, or split
// across threads when the step is large enough to pay for it.
template <typename Body>
inline void pointwise_pass(int64_t BU, const Body& body) {
  if (BU <= kGrain) {
    body(0, BU);
  } else {
    at::parallel_for(0, BU, kGrain / 2, body);
  }
}

// The input projections of `rows` consecutive rows of the time-major input x2 (rows of (T*B, F)),
// all at once: out = x2[row0 : row0 + rows] @ W_ih^T (+ b_ih). w_ih_t is W_ih transposed (a view).
inline void project_inputs(at::Tensor& out, const at::Tensor& x2, int64_t row0, int64_t rows,
                           const c10::optional<at::Tensor>& b_ih, const at::Tensor& w_ih_t) {
  const at::Tensor x_c = x2.narrow(0, row0, rows);
  if (b_ih.has_value() && b_ih->defined()) at::addmm_out(out, *b_ih, x_c, w_ih_t);
  else at::mm_out(out, x_c, w_ih_t);
}

}  // namespace rnnstate_ext
