/*
 * percpu/machine/atomics.h: the atomics of percpu, as static inline C on
 * 64-bit words at raw addresses. One definition for the CPython extension
 * (_atomic.c) and the native reference (bench/native/roundtrip.c), so the
 * emulator and its reference execute the same instructions.
 *
 * Memory orders are the kernel's on x86: plain loads and stores are
 * acquire/release (TSO gives that for free), read-modify-writes are locked
 * instructions (full barriers), and smp_mb() is the kernel's x86-64
 * __smp_mb(), `lock addl $0,-4(%rsp)` (arch/x86/include/asm/barrier.h), not
 * mfence, which the kernel keeps for mb() (device memory).
 */
#ifndef PERCPU_ATOMICS_H
#define PERCPU_ATOMICS_H

#include <stdint.h>

static inline int64_t percpu_load_acquire(int64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void percpu_store_release(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline int64_t percpu_fetch_add(int64_t *p, int64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline int64_t percpu_add_return(int64_t *p, int64_t v) { return __atomic_add_fetch(p, v, __ATOMIC_SEQ_CST); }
static inline int64_t percpu_xchg(int64_t *p, int64_t v) { return __atomic_exchange_n(p, v, __ATOMIC_SEQ_CST); }
/* lock or / lock and: set_bit and clear_bit (x86 `lock bts` / `lock btr`) */
static inline int64_t percpu_fetch_or(int64_t *p, int64_t v) { return __atomic_fetch_or(p, v, __ATOMIC_SEQ_CST); }
static inline int64_t percpu_fetch_and(int64_t *p, int64_t v) { return __atomic_fetch_and(p, v, __ATOMIC_SEQ_CST); }

/* cmpxchg: the value found (== old when it succeeded), as the kernel's cmpxchg() */
static inline int64_t
percpu_cmpxchg(int64_t *p, int64_t old, int64_t new)
{
    __atomic_compare_exchange_n(p, &old, new, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return old;
}

static inline void
percpu_smp_mb(void)
{
#if defined(__x86_64__)
    __asm__ __volatile__("lock addl $0,-4(%%rsp)" ::: "memory", "cc");
#elif defined(__i386__)
    __asm__ __volatile__("lock addl $0,-4(%%esp)" ::: "memory", "cc");
#else
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

static inline void
percpu_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
#endif
}

#endif /* PERCPU_ATOMICS_H */
