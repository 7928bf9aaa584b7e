/*
 * percpu.machine._atomic: the atomics (percpu's other native code is _futex.c).
 *
 * Atomic operations on 64-bit words at raw integer addresses inside the
 * shared-memory segment (their bodies are atomics.h, shared with the native
 * reference). numpy has no atomic read-modify-write, and a plain
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

#include "atomics.h"
#include "_words.h"

static unsigned long long rmw_ops;

#define RMW2(name, op)                                                       \
    static PyObject *name(PyObject *self, PyObject *const *args,             \
                          Py_ssize_t nargs)                                  \
    {                                                                        \
        int64_t *p, v;                                                       \
        NARGS(2, #name);                                                     \
        if (!(p = word_at(args[0])) || int64_arg(args[1], &v))               \
            return NULL;                                                     \
        rmw_ops++;                                                           \
        return PyLong_FromLongLong(op(p, v));                                \
    }

RMW2(fetch_add, percpu_fetch_add)   /* fetch_add(addr, v) -> old value */
RMW2(add_return, percpu_add_return) /* add_return(addr, v) -> new value */
RMW2(xchg, percpu_xchg)             /* xchg(addr, v) -> old value */
RMW2(fetch_or, percpu_fetch_or)     /* fetch_or(addr, v) -> old value (set_bit) */
RMW2(fetch_and, percpu_fetch_and)   /* fetch_and(addr, v) -> old value (clear_bit) */

/* dec_and_test(addr) -> True when the decrement reached zero */
static PyObject *
dec_and_test(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t *p;
    NARGS(1, "dec_and_test");
    if (!(p = word_at(args[0])))
        return NULL;
    rmw_ops++;
    return PyBool_FromLong(percpu_add_return(p, -1) == 0);
}

/* cmpxchg(addr, old, new) -> the value found (== old when it succeeded) */
static PyObject *
cmpxchg(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t *p, expected, desired;
    NARGS(3, "cmpxchg");
    if (!(p = word_at(args[0])) || int64_arg(args[1], &expected) ||
        int64_arg(args[2], &desired))
        return NULL;
    rmw_ops++;
    return PyLong_FromLongLong(percpu_cmpxchg(p, expected, desired));
}

/* load_acquire(addr) -> value (smp_load_acquire; a plain load on x86) */
static PyObject *
load_acquire(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t *p;
    NARGS(1, "load_acquire");
    if (!(p = word_at(args[0])))
        return NULL;
    return PyLong_FromLongLong(percpu_load_acquire(p));
}

/* store_release(addr, v) (smp_store_release; a plain store on x86) */
static PyObject *
store_release(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t *p, v;
    NARGS(2, "store_release");
    if (!(p = word_at(args[0])) || int64_arg(args[1], &v))
        return NULL;
    percpu_store_release(p, v);
    Py_RETURN_NONE;
}

/* smp_mb(): the kernel's full barrier (x86-64: lock addl $0,-4(%rsp)) */
static PyObject *
smp_mb(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    NARGS(0, "smp_mb");
    percpu_smp_mb();
    Py_RETURN_NONE;
}

/* cpu_relax(): the spin-wait hint */
static PyObject *
cpu_relax(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    NARGS(0, "cpu_relax");
    percpu_cpu_relax();
    Py_RETURN_NONE;
}

/* rmw_count() -> read-modify-write operations done by this process */
static PyObject *
rmw_count(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    NARGS(0, "rmw_count");
    return PyLong_FromUnsignedLongLong(rmw_ops);
}

/* rmw_counter() -> the address of that count, where the compiled engine's
 * inline atomics (machine/context.pxd) count theirs: one count per process */
static PyObject *
rmw_counter(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    NARGS(0, "rmw_counter");
    return PyLong_FromVoidPtr(&rmw_ops);
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
    {"fetch_or", (PyCFunction)(void (*)(void))fetch_or, METH_FASTCALL,
     "fetch_or(addr, v) -> old"},
    {"fetch_and", (PyCFunction)(void (*)(void))fetch_and, METH_FASTCALL,
     "fetch_and(addr, v) -> old"},
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
    {"rmw_counter", (PyCFunction)(void (*)(void))rmw_counter, METH_FASTCALL,
     "the address of the read-modify-write count"},
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
