/*
 * The native reference for `percpu bench`: the shared-memory operations of
 * each strategy's lazy round trip (user -> idle -> user), exactly those of
 * percpu.bench.roundtrip.ROUND_TRIP_OPS, with the emulator's own atomics
 * (percpu/machine/atomics.h, included), in N forked processes pinned like the
 * emulator's workers, on a shared anonymous mapping laid out like the
 * emulator's segment (the caller passes every field's byte offset, computed
 * from the same SharedState layout).
 *
 *   roundtrip STRATEGY SECONDS SIZE GEN TLB_GEN MM_COUNT FREED_TABLES_GEN \
 *             CORE:IPI_PENDING:IS_LAZY:HAZARD:LAZY_MM:MM_TO_MMDROP ...
 *
 * One argument per emulated CPU. Prints one line per CPU:
 * "cpu ROUND_TRIPS ELAPSED_NS".
 *
 * Built with -DTRACE, it does one round trip on one CPU, unpinned and
 * untimed, and prints each operation as "op field" (the fidelity test
 * compares that with ROUND_TRIP_OPS).
 */
#define _GNU_SOURCE
#include "atomics.h" /* percpu/machine/atomics.h: the emulator's own atomics */
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CPUS 1024
#define BATCH 4096 /* round trips between clock reads */

typedef int64_t word;

#ifdef TRACE
#define NOTE(op, field) printf("%s %s\n", op, #field)
#else
#define NOTE(op, field) ((void)0)
#endif
/* The emulator's atomics (atomics.h); the field name is the variable's name. */
#define LOAD(f) (NOTE("load", f), percpu_load_acquire(f))
#define STORE(f, v) (NOTE("store", f), percpu_store_release(f, (v)))
#define FETCH_ADD(f, v) (NOTE("fetch_add", f), percpu_fetch_add(f, (v)))
#define ADD_RETURN(f, v) (NOTE("add_return", f), percpu_add_return(f, (v)))
#define XCHG(f, v) (NOTE("xchg", f), percpu_xchg(f, (v)))
#define SMP_MB() (NOTE("smp_mb", ), percpu_smp_mb())

struct fields {
    word *ipi_pending, *is_lazy, *hazard, *lazy_mm, *mm_to_mmdrop;
    word *gen, *tlb_gen, *mm_count, *freed_tables_gen;
};

static const word MM = ((word)1 << 32) | 1; /* the process's mm reference */

/* Each function: n round trips, in ROUND_TRIP_OPS order. The loaded values
 * feed a sink so that nothing is optimised away. */
#define FIELDS                                                               \
    word *ipi_pending = f->ipi_pending, *is_lazy = f->is_lazy,               \
         *hazard = f->hazard, *lazy_mm = f->lazy_mm,                         \
         *mm_to_mmdrop = f->mm_to_mmdrop, *gen = f->gen,                     \
         *tlb_gen = f->tlb_gen, *mm_count = f->mm_count,                     \
         *freed_tables_gen = f->freed_tables_gen;                            \
    (void)hazard, (void)lazy_mm, (void)mm_to_mmdrop, (void)mm_count;         \
    word sink = 0

/* the user quantum's interrupt point and the switch into idle's first store */
#define USER_TO_IDLE()                                                       \
    sink += LOAD(ipi_pending);                                               \
    STORE(is_lazy, 1)
/* the idle quantum (interrupt point, page-walk probe) and the lazy return:
 * is_lazy cleared, smp_mb, tlb_gen read, then switch_mm_cid's smp_mb */
#define IDLE_TO_USER()                                                       \
    sink += LOAD(ipi_pending);                                               \
    sink += LOAD(gen);                                                       \
    sink += LOAD(freed_tables_gen);                                          \
    STORE(is_lazy, 0);                                                       \
    SMP_MB();                                                                \
    sink += LOAD(gen);                                                       \
    sink += LOAD(tlb_gen);                                                   \
    SMP_MB()

static word
refcount(const struct fields *f, long n)
{
    FIELDS;
    for (long i = 0; i < n; i++) {
        USER_TO_IDLE();
        sink += LOAD(gen);
        sink += FETCH_ADD(mm_count, 1);
        IDLE_TO_USER();
        sink += LOAD(gen);
        sink += ADD_RETURN(mm_count, -1);
    }
    return sink;
}

static word
shootdown(const struct fields *f, long n)
{
    FIELDS;
    for (long i = 0; i < n; i++) {
        USER_TO_IDLE();
        SMP_MB();
        IDLE_TO_USER();
        SMP_MB();
    }
    return sink;
}

static word
hazard(const struct fields *f, long n)
{
    FIELDS;
    for (long i = 0; i < n; i++) {
        USER_TO_IDLE();
        SMP_MB();
        sink += LOAD(hazard);
        STORE(hazard, MM);
        IDLE_TO_USER();
        SMP_MB();
        STORE(hazard, 0);
    }
    return sink;
}

static word
lazy_mm(const struct fields *f, long n)
{
    FIELDS;
    for (long i = 0; i < n; i++) {
        USER_TO_IDLE();
        sink += LOAD(lazy_mm);
        STORE(lazy_mm, MM);
        SMP_MB();
        sink += LOAD(mm_to_mmdrop);
        IDLE_TO_USER();
        sink += LOAD(lazy_mm);
        STORE(lazy_mm, 0);
        sink += LOAD(mm_to_mmdrop);
    }
    return sink;
}

static word
tlbstate(const struct fields *f, long n)
{
    FIELDS;
    for (long i = 0; i < n; i++) {
        USER_TO_IDLE();
        SMP_MB();
        IDLE_TO_USER();
    }
    return sink;
}

static const struct {
    const char *name;
    word (*round_trips)(const struct fields *, long);
} strategies[] = {
    {"refcount", refcount}, {"shootdown", shootdown}, {"hazard", hazard},
    {"lazy-mm", lazy_mm},   {"tlbstate", tlbstate},
};

static void
die(const char *msg, const char *arg)
{
    fprintf(stderr, "roundtrip: %s%s%s\n", msg, arg ? ": " : "", arg ? arg : "");
    exit(2);
}

static long
number(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < 0)
        die("not a non-negative integer", s);
    return v;
}

static int64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
main(int argc, char **argv)
{
    if (argc < 9)
        die("usage: roundtrip STRATEGY SECONDS SIZE GEN TLB_GEN MM_COUNT FREED_TABLES_GEN "
            "CORE:IPI_PENDING:IS_LAZY:HAZARD:LAZY_MM:MM_TO_MMDROP ...", NULL);
    word (*round_trips)(const struct fields *, long) = NULL;
    for (size_t i = 0; i < sizeof strategies / sizeof strategies[0]; i++)
        if (strcmp(argv[1], strategies[i].name) == 0)
            round_trips = strategies[i].round_trips;
    if (!round_trips)
        die("unknown strategy", argv[1]);
    double seconds = atof(argv[2]);
    long size = number(argv[3]);
    int ncpus = argc - 8;
    if (ncpus > MAX_CPUS)
        die("too many CPUs", NULL);

    /* The data, laid out as the caller says; the barrier and the results
     * live in a mapping of their own so that they touch none of its lines. */
    char *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int64_t *control = mmap(NULL, (2 + 2 * MAX_CPUS) * sizeof(int64_t), PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED || control == MAP_FAILED)
        die("mmap failed", NULL);
    int64_t *ready = &control[0], *go = &control[1], *results = &control[2];
#define AT(offset) ((word *)(base + (offset)))
    for (int j = 4; j < 8; j++)
        if (number(argv[j]) + 8 > size)
            die("offset outside the mapping", NULL);
    word *gen = AT(number(argv[4])), *tlb_gen = AT(number(argv[5])), *mm_count = AT(number(argv[6])),
         *freed_tables_gen = AT(number(argv[7]));
    *gen = 1;
    *mm_count = 1;

#ifdef TRACE
    ncpus = 1;
#endif
    pid_t pids[MAX_CPUS];
    for (int cpu = 0; cpu < ncpus; cpu++) {
        long v[6];
        char *arg = argv[8 + cpu], *save = NULL;
        int k = 0;
        for (char *tok = strtok_r(arg, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
            if (k == 6)
                die("a CPU takes CORE and 5 offsets", argv[8 + cpu]);
            v[k++] = number(tok);
        }
        if (k != 6)
            die("a CPU takes CORE and 5 offsets", argv[8 + cpu]);
        for (int j = 1; j < 6; j++)
            if (v[j] + 8 > size || v[j] % 8)
                die("bad offset", argv[8 + cpu]);
        struct fields f = {AT(v[1]), AT(v[2]), AT(v[3]), AT(v[4]), AT(v[5]), gen, tlb_gen, mm_count,
                           freed_tables_gen};
#ifdef TRACE
        round_trips(&f, 1);
        return 0;
#endif
        pid_t pid = fork();
        if (pid < 0)
            die("fork failed", NULL);
        if (pid == 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET((int)v[0], &set);
            if (sched_setaffinity(0, sizeof set, &set))
                die("cannot pin to core", argv[8 + cpu]);
            __atomic_fetch_add(ready, 1, __ATOMIC_SEQ_CST);
            while (!__atomic_load_n(go, __ATOMIC_ACQUIRE))
                ;
            volatile word sink = 0;
            int64_t done = 0, start = now_ns(), limit = (int64_t)(seconds * 1e9), elapsed;
            do {
                sink += round_trips(&f, BATCH);
                done += BATCH;
                elapsed = now_ns() - start;
            } while (elapsed < limit);
            results[2 * cpu] = done;
            results[2 * cpu + 1] = elapsed;
            _exit(0);
        }
        pids[cpu] = pid;
    }
    while (__atomic_load_n(ready, __ATOMIC_ACQUIRE) < ncpus)
        usleep(1000);
    __atomic_store_n(go, 1, __ATOMIC_RELEASE);
    int failed = 0;
    for (int cpu = 0; cpu < ncpus; cpu++) {
        int status;
        if (waitpid(pids[cpu], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
            failed = 1;
    }
    if (failed)
        die("a CPU process failed", NULL);
    /* Every round trip's inc is matched by its dec: anything else is a lost
     * update, and the figures would be of a broken program. */
    if (__atomic_load_n(mm_count, __ATOMIC_ACQUIRE) != 1)
        die("mm_count did not return to 1: lost updates", NULL);
    for (int cpu = 0; cpu < ncpus; cpu++)
        printf("%d %lld %lld\n", cpu, (long long)results[2 * cpu], (long long)results[2 * cpu + 1]);
    return 0;
}
