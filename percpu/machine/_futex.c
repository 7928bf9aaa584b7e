/*
 * percpu.machine._futex: how an emulated CPU sleeps and is woken.
 *
 * With more emulated CPUs than cores, a CPU that waits must leave its core
 * to the CPU it waits for, as a kernel blocks a waiter (machine/context.py's
 * halt and kick): it sleeps in futex_wait() on a word of the shared segment
 * until another CPU changes the word and calls futex_wake(). These are the
 * harness's, not the emulated kernel's: no shared atomic is counted.
 *
 * A module of its own, apart from _atomic: adding these functions to
 * _atomic moved its hot functions (load_acquire, store_release, ...) in
 * the library, and the lazy round trip ran 3-4% slower with the very same
 * instructions (valgrind: +0.2%), an effect of code placement alone.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "_words.h"

/* A futex is a 32-bit word: the low half of our 64-bit word. Not
 * FUTEX_PRIVATE_FLAG: the waiters are processes sharing the segment. */
static inline uint32_t *
futex_word(int64_t *p)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return (uint32_t *)p;
#else
    return (uint32_t *)p + 1;
#endif
}

/* futex_wait(addr, expected, timeout_ns) -> True when woken (or the word no
 * longer held `expected`), False when the timeout passed. Only the low 32
 * bits of the word and of `expected` are compared. */
static PyObject *
futex_wait(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t *p, expected, timeout_ns;
    long rc;
    int err;
    struct timespec timeout;
    NARGS(3, "futex_wait");
    if (!(p = word_at(args[0])) || int64_arg(args[1], &expected) || int64_arg(args[2], &timeout_ns))
        return NULL;
    if (timeout_ns < 0)
        timeout_ns = 0;
    timeout.tv_sec = timeout_ns / 1000000000;
    timeout.tv_nsec = timeout_ns % 1000000000;
    Py_BEGIN_ALLOW_THREADS
    rc = syscall(SYS_futex, futex_word(p), FUTEX_WAIT, (uint32_t)expected, &timeout, NULL, 0);
    err = errno;
    Py_END_ALLOW_THREADS
    if (rc == -1 && err == ETIMEDOUT)
        Py_RETURN_FALSE;
    if (rc == -1 && err != EAGAIN && err != EINTR) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_TRUE;
}

/* futex_wake(addr, n) -> how many waiters were woken (at most n) */
static PyObject *
futex_wake(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int64_t *p, n;
    long rc;
    NARGS(2, "futex_wake");
    if (!(p = word_at(args[0])) || int64_arg(args[1], &n))
        return NULL;
    if (n < 0 || n > INT32_MAX)
        n = INT32_MAX;
    rc = syscall(SYS_futex, futex_word(p), FUTEX_WAKE, (int)n, NULL, NULL, 0);
    if (rc == -1)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(rc);
}

static PyMethodDef methods[] = {
    {"futex_wait", (PyCFunction)(void (*)(void))futex_wait, METH_FASTCALL,
     "futex_wait(addr, expected, timeout_ns) -> woken (False: timed out)"},
    {"futex_wake", (PyCFunction)(void (*)(void))futex_wake, METH_FASTCALL,
     "futex_wake(addr, n) -> waiters woken"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "percpu.machine._futex",
    "Sleep on a word of shared memory until woken (Linux futex).", -1, methods,
};

PyMODINIT_FUNC
PyInit__futex(void)
{
    return PyModule_Create(&module);
}
