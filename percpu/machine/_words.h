/*
 * Argument helpers shared by percpu's C extensions (_atomic.c, _futex.c):
 * a 64-bit word at a raw, 8-byte aligned address, an int64 argument, and
 * the argument-count check of a METH_FASTCALL function.
 */
#ifndef PERCPU_WORDS_H
#define PERCPU_WORDS_H

#include <Python.h>
#include <stdint.h>

static inline int64_t *
word_at(PyObject *arg)
{
    void *p = PyLong_AsVoidPtr(arg);
    if (p == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "NULL address");
        return NULL;
    }
    if ((uintptr_t)p & 7) {
        PyErr_SetString(PyExc_ValueError, "address not 8-byte aligned");
        return NULL;
    }
    return (int64_t *)p;
}

static inline int
int64_arg(PyObject *arg, int64_t *out)
{
    long long v = PyLong_AsLongLong(arg);
    if (v == -1 && PyErr_Occurred())
        return -1;
    *out = (int64_t)v;
    return 0;
}

#define NARGS(n, name)                                                       \
    if (nargs != (n)) {                                                      \
        PyErr_Format(PyExc_TypeError, name "() takes %d arguments", (n));    \
        return NULL;                                                         \
    }

#endif
