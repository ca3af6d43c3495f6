/* Threads racing through pyimmortal's calls, under ThreadSanitizer.
 *
 * Built with -fsanitize=thread against a free-threaded CPython configured
 * --with-thread-sanitizer (c_tests/tsan/CMakeLists.txt, which links
 * pyimmortal::pyimmortal), and run by the test command's tsan step with
 * TSAN_OPTIONS=halt_on_error=1 and c_tests/tsan/suppressions.txt, so that
 * any report fails it. libpyimmortal.a itself is not instrumented: TSan
 * sees the accesses and the synchronization of CPython and of this program,
 * not the loads and stores inside pyimmortal's functions.
 *
 * N_THREADS threads attach to the interpreter, wait for each other, and run
 * `rounds` rounds each (argv[1], default DEFAULT_ROUNDS), all at once, on:
 *
 * - shared objects, made by the main thread before the threads start and
 *   used by every thread: a mortal instance (incref, decref, every query;
 *   pyimmortal_Immortalize, PyUnstable_SetImmortal and the checked variant
 *   are refused, since the caller does not own it), an instance the main
 *   thread made immortal (incref, decref, queries, pyimmortal_Immortalize
 *   again, which is idempotent, Registry_Contains), the class itself
 *   (owned by the main thread, so refused), and N_DEFERRED instances on which every
 *   thread turns deferred reference counting on at about the same time,
 *   alternating CPython's name and pyimmortal's: exactly one call per
 *   object returns 1;
 * - owned objects, made by each thread in each round while the others run:
 *   a uniquely referenced instance made immortal with pyimmortal_Immortalize
 *   or PyUnstable_SetImmortal (alternately), a uniquely referenced float
 *   made immortal the same way, an instance with two references (refused:
 *   other threads exist) that then gets deferred reference counting and is
 *   made immortal (a deferred object qualifies whatever its count), and a
 *   list that is increfed, decrefed and freed;
 * - handed-over objects: each thread publishes that fresh instance at the
 *   start of the round, before it makes it immortal, and the next thread
 *   asks PyUnstable_IsImmortal, pyimmortal_PyUnstable_IsImmortal and
 *   Registry_Contains about it 2 * WATCHES times a round, before, during
 *   and after the owner's call;
 * - the registry: Registry_Count in every round (it never decreases),
 *   Registry_Visit every VISIT_EVERY rounds (every visited object is
 *   immortal, and there are at least as many as counted before).
 *
 * Thread 0 also runs the cyclic collector every GC_EVERY rounds: a
 * stop-the-world pause while the other threads are in pyimmortal's calls;
 * thread 1 calls pyimmortal_ImmortalizeHeap as often, which must refuse
 * while other threads exist. One more thread makes thread states come and
 * go meanwhile: `rounds / CHURN_EVERY` times it attaches a new thread state,
 * makes a fresh instance immortal, has another refused (two references),
 * and deletes its thread state again.
 * At the end the main thread checks the totals (the registry holds exactly
 * the objects made immortal with pyimmortal_Immortalize, each deferred
 * object was turned on once), checks that the shared mortal and deferred
 * instances are freed once dropped, and prints the figures. */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>

#if !defined(Py_GIL_DISABLED) || PY_VERSION_HEX < 0x030E0000
#  error "the TSan test is for free-threaded CPython 3.14+"
#endif

#define N_THREADS 4
#define DEFAULT_ROUNDS 2000
#define N_DEFERRED 64
#define INCREFS 16
#define WATCHES 8
#define VISIT_EVERY 50
#define GC_EVERY 100
#define CHURN_EVERY 4

static PyObject *Thing;
static PyObject *shared_mortal;
static PyObject *shared_immortal;
static PyObject *shared_deferred[N_DEFERRED];
static atomic_int deferred_wins[N_DEFERRED];
/* The instance each thread is making immortal, for the next thread. */
static _Atomic(PyObject *) handed_over[N_THREADS];
static long rounds = DEFAULT_ROUNDS;
static pthread_barrier_t start;

/* What one thread did, summed by the main thread. */
struct counts {
    long made;          /* pyimmortal_Immortalize returned 1 on a mortal object */
    long set_immortal;  /* PyUnstable_SetImmortal returned 1 */
    long refused;       /* pyimmortal_Immortalize*, PyUnstable_SetImmortal refused */
    long queries;       /* IsImmortal, IsUniquelyReferenced (both names) */
    long refcounts;     /* Py_INCREF and Py_DECREF */
    long deferred;      /* EnableDeferredRefcount calls (both names) */
    long registry;      /* Registry_Count, Registry_Visit, Registry_Contains */
    long seen_immortal; /* handed-over objects seen immortal */
    long seen_mortal;   /* handed-over objects seen mortal (owner not done yet) */
    long collections;
};

struct worker {
    int index;
    pthread_t thread;
    struct counts c;
};

static void
incref_decref(PyObject *o, struct counts *c)
{
    for (int k = 0; k < INCREFS; k++) {
        Py_INCREF(o);
    }
    for (int k = 0; k < INCREFS; k++) {
        Py_DECREF(o);
    }
    c->refcounts += 2 * INCREFS;
}

/* The checked variant refuses with RuntimeError. */
static void
checked_refused(PyObject *o, struct counts *c)
{
    CHECK(pyimmortal_ImmortalizeChecked(o) == -1);
    CHECK(PyErr_ExceptionMatches(PyExc_RuntimeError));
    PyErr_Clear();
    c->refused++;
}

struct visit {
    Py_ssize_t n;
};

static int
visit_one(PyObject *obj, void *arg)
{
    struct visit *v = (struct visit *)arg;
    CHECK(PyUnstable_IsImmortal(obj));
    Py_INCREF(obj);
    Py_DECREF(obj);
    v->n++;
    return 0;
}

static void
use_shared(long r, struct counts *c)
{
    /* Mortal, owned by the main thread: queries, and every way of making it
     * immortal refused. */
    incref_decref(shared_mortal, c);
    CHECK(!PyUnstable_IsImmortal(shared_mortal));
    CHECK(!pyimmortal_PyUnstable_IsImmortal(shared_mortal));
    CHECK(!PyUnstable_Object_IsUniquelyReferenced(shared_mortal));
    CHECK(!pyimmortal_PyUnstable_Object_IsUniquelyReferenced(shared_mortal));
    c->queries += 4;
    CHECK(pyimmortal_Immortalize(shared_mortal) == 0);
    CHECK(PyUnstable_SetImmortal(shared_mortal) == 0);
    c->refused += 2;
    if (r % 8 == 0) {
        checked_refused(shared_mortal, c);
    }

    /* Immortal already: idempotent, registered, never unique. */
    incref_decref(shared_immortal, c);
    CHECK(PyUnstable_IsImmortal(shared_immortal));
    CHECK(pyimmortal_PyUnstable_IsImmortal(shared_immortal));
    CHECK(!PyUnstable_Object_IsUniquelyReferenced(shared_immortal));
    c->queries += 3;
    CHECK(pyimmortal_Immortalize(shared_immortal) == 1);
    CHECK(PyUnstable_SetImmortal(shared_immortal) == 0);
    c->refused++;
    CHECK(pyimmortal_Registry_Contains(shared_immortal) == 1);
    c->registry++;

    /* The class: owned by the main thread, so refused. */
    CHECK(pyimmortal_Immortalize(Thing) == 0);
    c->refused++;

    /* Deferred reference counting turned on by every thread at about the
     * same time; only one call per object wins. */
    if (r < N_DEFERRED) {
        int won = (r % 2 == 0) ? PyUnstable_Object_EnableDeferredRefcount(shared_deferred[r])
                               : pyimmortal_PyUnstable_Object_EnableDeferredRefcount(shared_deferred[r]);
        CHECK(won == 0 || won == 1);
        atomic_fetch_add(&deferred_wins[r], won);
        c->deferred++;
    }
    PyObject *d = shared_deferred[r % N_DEFERRED];
    incref_decref(d, c);
    CHECK(!PyUnstable_IsImmortal(d));
    c->queries++;
    CHECK(pyimmortal_Immortalize(d) == 0);
    c->refused++;
}

/* A fresh instance, uniquely referenced, published for the next thread at
 * the start of the round; use_owned makes it immortal. */
static PyObject *
hand_over(struct worker *w, struct counts *c)
{
    PyObject *a = new_instance(Thing);
    CHECK(PyUnstable_Object_IsUniquelyReferenced(a));
    c->queries++;
    atomic_store_explicit(&handed_over[w->index], a, memory_order_release);
    return a;
}

static void
use_owned(PyObject *a, long r, struct counts *c)
{
    /* The instance handed over: made immortal while the other threads run
     * and the next one watches it. */
    CHECK(PyUnstable_Object_IsUniquelyReferenced(a));
    c->queries++;
    if (r % 2 == 0) {
        CHECK(pyimmortal_Immortalize(a) == 1);
        CHECK(pyimmortal_Registry_Contains(a) == 1);
        c->made++;
    }
    else {
        CHECK(PyUnstable_SetImmortal(a) == 1);
        CHECK(pyimmortal_Registry_Contains(a) == 0);
        c->set_immortal++;
    }
    c->registry++;
    CHECK(PyUnstable_IsImmortal(a));
    c->queries++;
    incref_decref(a, c);
    Py_DECREF(a); /* immortal: nothing happens */

    /* Not a GC object. */
    PyObject *f = PyFloat_FromDouble((double)r + 0.5);
    CHECK(f != NULL);
    if (r % 2 == 0) {
        CHECK(pyimmortal_Immortalize(f) == 1);
        c->made++;
    }
    else {
        CHECK(PyUnstable_SetImmortal(f) == 1);
        c->set_immortal++;
    }
    CHECK(pyimmortal_PyUnstable_IsImmortal(f));
    c->queries++;
    Py_DECREF(f);

    /* Two references while other threads exist: refused. Then deferred,
     * which qualifies whatever the count and the other threads (the bias
     * keeps their decrefs off the merge queue): made immortal. */
    PyObject *b = new_instance(Thing);
    Py_INCREF(b);
    CHECK(!PyUnstable_Object_IsUniquelyReferenced(b));
    c->queries++;
    CHECK(pyimmortal_Immortalize(b) == 0);
    CHECK(PyUnstable_SetImmortal(b) == 0);
    c->refused += 2;
    checked_refused(b, c);
    Py_DECREF(b);
    CHECK(pyimmortal_PyUnstable_Object_IsUniquelyReferenced(b));
    c->queries++;
    CHECK((r % 2 == 0 ? PyUnstable_Object_EnableDeferredRefcount(b)
                      : pyimmortal_PyUnstable_Object_EnableDeferredRefcount(b)) == 1);
    c->deferred++;
    Py_INCREF(b);
    CHECK(pyimmortal_Immortalize(b) == 1);
    CHECK(pyimmortal_Registry_Contains(b) == 1);
    c->made++;
    c->registry++;
    Py_DECREF(b); /* immortal: nothing happens */
    incref_decref(b, c);
    Py_DECREF(b);

    /* A list that ends the ordinary way. */
    PyObject *l = PyList_New(0);
    CHECK(l != NULL);
    incref_decref(l, c);
    CHECK(!PyUnstable_IsImmortal(l));
    c->queries++;
    Py_DECREF(l);
}

static void
watch_neighbour(struct worker *w, PyObject **last, int *last_immortal, struct counts *c)
{
    int from = (w->index + N_THREADS - 1) % N_THREADS;
    PyObject *p = atomic_load_explicit(&handed_over[from], memory_order_acquire);
    if (p == NULL) {
        return;
    }
    /* The instance stays alive: its owner holds a reference until it is
     * immortal, which it is once the owner's call returns. */
    int immortal = PyUnstable_IsImmortal(p);
    int immortal2 = pyimmortal_PyUnstable_IsImmortal(p);
    (void)pyimmortal_Registry_Contains(p);
    c->queries += 2;
    c->registry++;
    /* Once immortal, always immortal. */
    if (p == *last && *last_immortal) {
        CHECK(immortal && immortal2);
    }
    if (immortal) {
        CHECK(immortal2);
    }
    *last = p;
    *last_immortal = immortal && immortal2;
    if (*last_immortal) {
        c->seen_immortal++;
    }
    else {
        c->seen_mortal++;
    }
}

static void *
work(void *arg)
{
    struct worker *w = (struct worker *)arg;
    struct counts *c = &w->c;
    PyGILState_STATE st = PyGILState_Ensure();
    Py_BEGIN_ALLOW_THREADS
    pthread_barrier_wait(&start);
    Py_END_ALLOW_THREADS
    PyObject *last = NULL;
    int last_immortal = 0;
    Py_ssize_t counted = 0;
    for (long r = 0; r < rounds; r++) {
        PyObject *a = hand_over(w, c);
        use_shared(r, c);
        for (int k = 0; k < WATCHES; k++) {
            watch_neighbour(w, &last, &last_immortal, c);
        }
        use_owned(a, r, c);
        for (int k = 0; k < WATCHES; k++) {
            watch_neighbour(w, &last, &last_immortal, c);
        }
        Py_ssize_t n = pyimmortal_Registry_Count();
        CHECK(n >= counted);
        counted = n;
        c->registry++;
        if (r % VISIT_EVERY == 0) {
            struct visit v = {0};
            CHECK(pyimmortal_Registry_Visit(visit_one, &v) == 0);
            CHECK(v.n >= counted);
            c->registry++;
        }
        if (w->index == 0 && r % GC_EVERY == GC_EVERY - 1) {
            (void)PyGC_Collect();
            c->collections++;
        }
        if (w->index == 1 && r % GC_EVERY == GC_EVERY - 1) {
            CHECK(pyimmortal_ImmortalizeHeap() == -1);
            CHECK(PyErr_ExceptionMatches(PyExc_RuntimeError));
            PyErr_Clear();
            c->refused++;
        }
    }
    PyGILState_Release(st);
    return NULL;
}

/* Thread states coming and going: each pass is a new one. */
static void *
churn(void *arg)
{
    struct worker *w = (struct worker *)arg;
    struct counts *c = &w->c;
    pthread_barrier_wait(&start); /* no thread state yet */
    for (long r = 0; r < rounds / CHURN_EVERY; r++) {
        PyGILState_STATE st = PyGILState_Ensure();
        PyObject *o = new_instance(Thing);
        CHECK(pyimmortal_Immortalize(o) == 1);
        c->made++;
        CHECK(pyimmortal_Registry_Contains(o) == 1);
        c->registry++;
        PyObject *two = new_instance(Thing);
        Py_INCREF(two);
        CHECK(pyimmortal_Immortalize(two) == 0);
        c->refused++;
        Py_DECREF(two);
        Py_DECREF(two);
        PyGILState_Release(st);
    }
    return NULL;
}

int
main(int argc, char **argv)
{
    if (argc > 1) {
        rounds = strtol(argv[1], NULL, 10);
        CHECK(rounds >= N_DEFERRED);
    }
    harness_start("test_tsan");
    Thing = make_class();
    shared_mortal = new_instance(Thing);
    shared_immortal = new_instance(Thing);
    CHECK(pyimmortal_Immortalize(shared_immortal) == 1);
    for (int k = 0; k < N_DEFERRED; k++) {
        shared_deferred[k] = new_instance(Thing);
    }

    /* The workers, then the thread that makes thread states come and go. */
    struct worker workers[N_THREADS + 1];
    CHECK(pthread_barrier_init(&start, NULL, N_THREADS + 1) == 0);
    Py_BEGIN_ALLOW_THREADS
    for (int i = 0; i <= N_THREADS; i++) {
        workers[i] = (struct worker){.index = i};
        CHECK(pthread_create(&workers[i].thread, NULL, i < N_THREADS ? work : churn,
                             &workers[i]) == 0);
    }
    for (int i = 0; i <= N_THREADS; i++) {
        CHECK(pthread_join(workers[i].thread, NULL) == 0);
    }
    Py_END_ALLOW_THREADS
    pthread_barrier_destroy(&start);

    long churned = workers[N_THREADS].c.made;
    CHECK(churned == rounds / CHURN_EVERY);
    struct counts t = {0};
    for (int i = 0; i <= N_THREADS; i++) {
        struct counts *c = &workers[i].c;
        t.made += c->made;
        t.set_immortal += c->set_immortal;
        t.refused += c->refused;
        t.queries += c->queries;
        t.refcounts += c->refcounts;
        t.deferred += c->deferred;
        t.registry += c->registry;
        t.seen_immortal += c->seen_immortal;
        t.seen_mortal += c->seen_mortal;
        t.collections += c->collections;
    }
    /* The registry: the shared immortal and every object that
     * pyimmortal_Immortalize made immortal, nothing else. */
    CHECK(pyimmortal_Registry_Count() == 1 + t.made);
    struct visit v = {0};
    CHECK(pyimmortal_Registry_Visit(visit_one, &v) == 0);
    CHECK(v.n == 1 + t.made);
    for (int k = 0; k < N_DEFERRED; k++) {
        CHECK(atomic_load(&deferred_wins[k]) == 1);
    }
    /* Two objects a worker's round, by pyimmortal_Immortalize in even rounds
     * and PyUnstable_SetImmortal in odd ones, the deferred instance in every
     * round, and one a churn pass. */
    CHECK(t.made == 2L * N_THREADS * ((rounds + 1) / 2) + (long)N_THREADS * rounds + churned);
    CHECK(t.set_immortal == 2L * N_THREADS * (rounds / 2));

    CHECK(dropped_and_freed(shared_mortal));
    for (int k = 0; k < N_DEFERRED; k++) {
        CHECK(dropped_and_freed(shared_deferred[k]));
    }
    Py_CLEAR(Thing);
    fprintf(stderr,
            "test_tsan: %d threads x %ld rounds, %ld thread states come and gone: "
            "%ld calls (%ld made immortal by "
            "pyimmortal_Immortalize, %ld by PyUnstable_SetImmortal, %ld refused, "
            "%ld queries, %ld deferred, %ld registry), %ld increfs and decrefs, "
            "%ld collections; handed-over objects seen immortal %ld, mortal %ld\n",
            N_THREADS, rounds, churned,
            t.made + t.set_immortal + t.refused + t.queries + t.deferred + t.registry,
            t.made, t.set_immortal, t.refused, t.queries, t.deferred, t.registry,
            t.refcounts, t.collections, t.seen_immortal, t.seen_mortal);
    return harness_finish();
}
