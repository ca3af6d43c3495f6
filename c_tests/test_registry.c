/* The registry of objects that pyimmortal made immortal: count, visit,
 * contains; per interpreter; emptied at finalization. */
#include "harness.h"

static PyObject *Thing;

struct collected {
    PyObject *items[16];
    int n;
    int stop_after;
};

static int
collect(PyObject *obj, void *arg)
{
    struct collected *c = (struct collected *)arg;
    CHECK(c->n < 16);
    c->items[c->n++] = obj;
    return c->n == c->stop_after ? 42 : 0;
}

static PyObject *made[3];

static void
test_count_visit_contains(void)
{
    Py_ssize_t base = pyimmortal_Registry_Count();
    CHECK(base == 0);
    for (int i = 0; i < 3; i++) {
        made[i] = new_instance(Thing);
        CHECK(pyimmortal_Immortalize(made[i]) == HAS_IMMORTALITY);
    }
    /* Already immortal: accepted, but not something pyimmortal made. */
    CHECK(pyimmortal_Immortalize(Py_None) == HAS_IMMORTALITY);
    CHECK(pyimmortal_Immortalize(made[0]) == HAS_IMMORTALITY);
    Py_ssize_t want = HAS_IMMORTALITY ? 3 : 0;
    CHECK(pyimmortal_Registry_Count() == want);

    struct collected c = {{NULL}, 0, 0};
    CHECK(pyimmortal_Registry_Visit(collect, &c) == 0);
    CHECK(c.n == want);
    for (int i = 0; i < c.n; i++) {
        CHECK(c.items[i] == made[i]);
    }
    if (HAS_IMMORTALITY) {
        struct collected stop = {{NULL}, 0, 2};
        CHECK(pyimmortal_Registry_Visit(collect, &stop) == 42);
        CHECK(stop.n == 2);
    }
    for (int i = 0; i < 3; i++) {
        CHECK(pyimmortal_Registry_Contains(made[i]) == HAS_IMMORTALITY);
    }
    CHECK(pyimmortal_Registry_Contains(Py_None) == 0);
    PyObject *mortal = new_instance(Thing);
    CHECK(pyimmortal_Registry_Contains(mortal) == 0);
    Py_DECREF(mortal);
    CHECK(pyimmortal_Registry_Contains(NULL) == 0);

    CHECK(pyimmortal_Registry_Visit(NULL, NULL) == -1);
    CHECK(PyErr_ExceptionMatches(PyExc_SystemError));
    PyErr_Clear();
    for (int i = 0; i < 3; i++) {
        Py_DECREF(made[i]);
    }
}

/* A subinterpreter has its own entries; ending it leaves the main
 * interpreter's entries alone, and its immortal object stays valid. */
static PyObject *sub_object;

static void
test_subinterpreter(void)
{
    PyThreadState *main_ts = PyThreadState_Get();
    PyThreadState *sub = Py_NewInterpreter();
    CHECK(sub != NULL);
    CHECK(pyimmortal_Registry_Count() == 0);
    PyObject *o = PyList_New(0);
    CHECK(PyList_Append(o, Py_None) == 0);
    CHECK(pyimmortal_Immortalize(o) == HAS_IMMORTALITY);
    CHECK(pyimmortal_Registry_Count() == (HAS_IMMORTALITY ? 1 : 0));
    CHECK(pyimmortal_Registry_Contains(o) == HAS_IMMORTALITY);
    if (HAS_IMMORTALITY) {
        sub_object = o; /* immortal: outlives its interpreter */
    }
    Py_DECREF(o);
    Py_EndInterpreter(sub);
    PyThreadState_Swap(main_ts);
    CHECK(pyimmortal_Registry_Count() == (HAS_IMMORTALITY ? 3 : 0));
    if (sub_object != NULL) {
        CHECK(pyimmortal_Registry_Contains(sub_object) == 0);
        CHECK(PyList_GET_SIZE(sub_object) == 1);
        CHECK(PyList_GET_ITEM(sub_object, 0) == Py_None);
    }
}

/* One runtime of an embedding application: initialize, make 3 objects
 * immortal, check what the registry lists, finalize. Objects of earlier
 * runtimes must never show up again. */
#define ROUNDS 3
static PyObject *round_made[ROUNDS][3];

static void
runtime_round(int round)
{
    Py_Initialize();
    CHECK(Py_IsInitialized());
    CHECK(pyimmortal_Registry_Count() == 0);
    for (int r = 0; r < round; r++) {
        for (int i = 0; i < 3; i++) {
            CHECK(pyimmortal_Registry_Contains(round_made[r][i]) == 0);
        }
    }
    for (int i = 0; i < 3; i++) {
        PyObject *o = PyList_New(0);
        CHECK(o != NULL);
        CHECK(PyList_Append(o, Py_None) == 0);
        CHECK(pyimmortal_Immortalize(o) == HAS_IMMORTALITY);
        round_made[round][i] = o;
        Py_DECREF(o);
    }
    Py_ssize_t want = HAS_IMMORTALITY ? 3 : 0;
    Py_ssize_t count = pyimmortal_Registry_Count();
    if (count != want) {
        fprintf(stderr, "round %d: count %zd, want %zd\n", round, count, want);
        CHECK(0);
    }
    check_registry(round_made[round], want);
    for (int i = 0; i < 3; i++) {
        CHECK(pyimmortal_Registry_Contains(round_made[round][i]) == HAS_IMMORTALITY);
    }
    harness_finalize();
    fprintf(stderr, "  runtime round %d: registry empty at start, %zd after ... ok\n",
            round, want);
}

int
main(void)
{
    harness_start("test_registry");
    Thing = make_class();
    RUN(test_count_visit_contains);
    RUN(test_subinterpreter);
    Py_CLEAR(Thing);
    harness_finish();

    /* Py_FinalizeEx emptied the registry: each new runtime starts with
     * none, however many times the application initializes Python. */
    for (int round = 0; round < ROUNDS; round++) {
        runtime_round(round);
    }

    Py_Initialize();
    CHECK(pyimmortal_Registry_Count() == 0);
    for (int i = 0; i < 3; i++) {
        CHECK(pyimmortal_Registry_Contains(made[i]) == 0);
    }
    fprintf(stderr, "  registry empty after re-initialization ... ok\n");
    return harness_finish();
}
