/* Cost of pyimmortal_Registry_Contains as the registry grows: an embedding
 * program that makes 1,000, then 100,000, then 1,000,000 objects immortal
 * and times Contains on registered objects (hits) and on a mortal object
 * (misses) at each size. It prints the figures and makes no assertions.
 *
 *   cmake -S bench -B _build/bench/<tag> -DPYIMMORTAL_PYTHON=/path/to/python
 *   cmake --build _build/bench/<tag> --target registry_contains
 *   _build/bench/<tag>/registry_contains [lookups per size]
 */
#define PY_SSIZE_T_CLEAN
#include "pyimmortal.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void
die(const char *what)
{
    fprintf(stderr, "registry_contains: %s\n", what);
    if (PyErr_Occurred()) {
        PyErr_Print();
    }
    exit(1);
}

int
main(int argc, char **argv)
{
    static const Py_ssize_t sizes[] = {1000, 100000, 1000000};
    const Py_ssize_t largest = sizes[sizeof(sizes) / sizeof(sizes[0]) - 1];
    long lookups = argc > 1 ? atol(argv[1]) : 1000000;
    if (lookups <= 0) {
        die("lookups must be positive");
    }

    Py_Initialize();
    printf("pyimmortal_Registry_Contains, pyimmortal built for %s, running %s\n",
           pyimmortal_target(), Py_GetVersion());
#if PY_VERSION_HEX < 0x030C0000
    printf("no immortal objects before CPython 3.12: nothing to measure\n");
    return Py_FinalizeEx() < 0 ? 1 : 0;
#else
    PyObject **made = malloc(sizeof(PyObject *) * (size_t)largest);
    if (made == NULL) {
        die("out of memory");
    }
    PyObject *mortal = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type);
    if (mortal == NULL) {
        die("object() failed");
    }
    printf("%12s %14s %14s %10s\n", "entries", "hit ns/call", "miss ns/call",
           "lookups");

    Py_ssize_t count = 0;
    volatile long sink = 0;
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        for (; count < sizes[s]; count++) {
            PyObject *o = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type);
            if (o == NULL || pyimmortal_ImmortalizeChecked(o) < 0) {
                die("could not make an object immortal");
            }
            made[count] = o; /* immortal: the reference needs no release */
        }
        if (pyimmortal_Registry_Count() != count) {
            die("the registry does not hold every object");
        }
        /* Hits: walk the objects with a stride coprime to every size, so
         * that successive lookups do not touch neighbouring entries. */
        size_t i = 0;
        double t0 = now_ns();
        for (long n = 0; n < lookups; n++) {
            sink += pyimmortal_Registry_Contains(made[i]);
            i = (i + 7919) % (size_t)count;
        }
        double hit = (now_ns() - t0) / (double)lookups;
        t0 = now_ns();
        for (long n = 0; n < lookups; n++) {
            sink += pyimmortal_Registry_Contains(mortal);
        }
        double miss = (now_ns() - t0) / (double)lookups;
        printf("%12zd %14.1f %14.1f %10ld\n", count, hit, miss, lookups);
        fflush(stdout);
    }
    if (sink != lookups * (long)(sizeof(sizes) / sizeof(sizes[0]))) {
        die("a registered object was not found");
    }
    Py_DECREF(mortal);
    free(made);
    return Py_FinalizeEx() < 0 ? 1 : 0;
#endif
}
