/*
 * percpu.machine._atomic: the atomics (percpu's other native code is _futex.c).
 *
 * Atomic operations on 64-bit words at raw integer addresses inside the
 * shared-memory segment. numpy has no atomic read-modify-write, and a plain
 * `a[i] += 1` from two processes loses updates. Each function is a
 * METH_FASTCALL call (tens of ns) so that the cost the emulator measures is
 * dominated by real cache-line traffic, not by the call.
 *
 * rmw_count() is the number of read-modify-write operations this process has
 * done: the "shared atomics" figure, counted here at no cost to the caller.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#include "_words.h"

static unsigned long long rmw_ops;

/* fetch_add(addr, v) -> old value */
static PyObject *
fetch_add(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t *p, v;
    NARGS(2, "fetch_add");
    if (!(p = word_at(args[0])) || int64_arg(args[1], &v))
        return NULL;
    rmw_ops++;
    return PyLong_FromLongLong(__atomic_fetch_add(p, v, __ATOMIC_SEQ_CST));
}

/* add_return(addr, v) -> new value */
static PyObject *
add_return(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t *p, v;
    NARGS(2, "add_return");
    if (!(p = word_at(args[0])) || int64_arg(args[1], &v))
        return NULL;
    rmw_ops++;
    return PyLong_FromLongLong(__atomic_add_fetch(p, v, __ATOMIC_SEQ_CST));
}

/* dec_and_test(addr) -> True when the decrement reached zero */
static PyObject *
dec_and_test(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t *p;
    NARGS(1, "dec_and_test");
    if (!(p = word_at(args[0])))
        return NULL;
    rmw_ops++;
    return PyBool_FromLong(__atomic_sub_fetch(p, 1, __ATOMIC_SEQ_CST) == 0);
}

/* xchg(addr, v) -> old value */
static PyObject *
xchg(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t *p, v;
    NARGS(2, "xchg");
    if (!(p = word_at(args[0])) || int64_arg(args[1], &v))
        return NULL;
    rmw_ops++;
    return PyLong_FromLongLong(__atomic_exchange_n(p, v, __ATOMIC_SEQ_CST));
}

/* cmpxchg(addr, old, new) -> the value found (== old when it succeeded),
 * as the kernel's cmpxchg() returns it */
static PyObject *
cmpxchg(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t *p, expected, desired;
    NARGS(3, "cmpxchg");
    if (!(p = word_at(args[0])) || int64_arg(args[1], &expected) ||
        int64_arg(args[2], &desired))
        return NULL;
    rmw_ops++;
    __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_SEQ_CST,
                                __ATOMIC_SEQ_CST);
    return PyLong_FromLongLong(expected);
}

/* load_acquire(addr) -> value (smp_load_acquire; a plain load on x86) */
static PyObject *
load_acquire(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t *p;
    NARGS(1, "load_acquire");
    if (!(p = word_at(args[0])))
        return NULL;
    return PyLong_FromLongLong(__atomic_load_n(p, __ATOMIC_ACQUIRE));
}

/* store_release(addr, v) (smp_store_release; a plain store on x86) */
static PyObject *
store_release(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t *p, v;
    NARGS(2, "store_release");
    if (!(p = word_at(args[0])) || int64_arg(args[1], &v))
        return NULL;
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
    Py_RETURN_NONE;
}

/* smp_mb(): full barrier (mfence / lock-prefixed op on x86, dmb ish on arm64) */
static PyObject *
smp_mb(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    NARGS(0, "smp_mb");
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    Py_RETURN_NONE;
}

/* cpu_relax(): the spin-wait hint */
static PyObject *
cpu_relax(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    NARGS(0, "cpu_relax");
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
#endif
    Py_RETURN_NONE;
}

/* rmw_count() -> read-modify-write operations done by this process */
static PyObject *
rmw_count(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    NARGS(0, "rmw_count");
    return PyLong_FromUnsignedLongLong(rmw_ops);
}

static PyMethodDef methods[] = {
    {"fetch_add", (PyCFunction)(void (*)(void))fetch_add, METH_FASTCALL,
     "fetch_add(addr, v) -> old"},
    {"add_return", (PyCFunction)(void (*)(void))add_return, METH_FASTCALL,
     "add_return(addr, v) -> new"},
    {"dec_and_test", (PyCFunction)(void (*)(void))dec_and_test, METH_FASTCALL,
     "dec_and_test(addr) -> bool"},
    {"xchg", (PyCFunction)(void (*)(void))xchg, METH_FASTCALL,
     "xchg(addr, v) -> old"},
    {"cmpxchg", (PyCFunction)(void (*)(void))cmpxchg, METH_FASTCALL,
     "cmpxchg(addr, old, new) -> found"},
    {"load_acquire", (PyCFunction)(void (*)(void))load_acquire, METH_FASTCALL,
     "load_acquire(addr) -> value"},
    {"store_release", (PyCFunction)(void (*)(void))store_release,
     METH_FASTCALL, "store_release(addr, v)"},
    {"smp_mb", (PyCFunction)(void (*)(void))smp_mb, METH_FASTCALL,
     "full memory barrier"},
    {"cpu_relax", (PyCFunction)(void (*)(void))cpu_relax, METH_FASTCALL,
     "spin-wait hint"},
    {"rmw_count", (PyCFunction)(void (*)(void))rmw_count, METH_FASTCALL,
     "read-modify-write operations done by this process"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "percpu.machine._atomic",
    "Atomics on raw addresses in shared memory.", -1, methods,
};

PyMODINIT_FUNC
PyInit__atomic(void)
{
    return PyModule_Create(&module);
}
