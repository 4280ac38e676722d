/* The trie walk of restrictive DFA states in C (trie_walk.py calls it; the numpy walk there is the
 * fallback and the reference the tests compare it with).
 *
 * Why native code: a numpy trie walk pays about ten calls a level, 100 to 250 us a batch of states
 * whatever its size, and that overhead is most of a decode step's first visit to a key, a number or a
 * date and most of a small regex's compile. A walk in C visits each live trie node once at a few
 * nanoseconds: 3 to 9 times less for the same batch (benchmarks/bench_native.py).
 *
 * No numpy headers: arrays come in through the buffer protocol (C-contiguous, item sizes checked). The
 * GIL is released during the walk.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>

enum { CHILD_START, CHILD_COUNT, NODE_BYTE, TOKEN_START, TOKEN_IDS, ROOT_CHILD, TRANSITIONS, ORIGINS, OUT, DEPTHS, N_ARRAYS };

static const Py_ssize_t item_sizes[N_ARRAYS] = {8, 8, 4, 8, 4, 8, 4, 8, 4, 8};
static const char *array_names[N_ARRAYS] = {"child_start", "child_count", "node_byte", "token_start", "token_ids",
                                            "root_child",  "transitions", "origins",   "out",         "depths"};

/* One walk's frontier: trie nodes and the DFA states they reached, the current level and the next. */
typedef struct {
    int64_t *node[2];
    int32_t *state[2];
    Py_ssize_t capacity;
} Frontier;

static int reserve(Frontier *frontier, Py_ssize_t needed) {
    if (needed <= frontier->capacity) return 0;
    Py_ssize_t size = frontier->capacity ? frontier->capacity : 1024;
    while (size < needed) size *= 2;
    for (int level = 0; level < 2; level++) {
        int64_t *nodes = realloc(frontier->node[level], (size_t)size * sizeof(int64_t));
        if (nodes) frontier->node[level] = nodes;
        int32_t *states = realloc(frontier->state[level], (size_t)size * sizeof(int32_t));
        if (states) frontier->state[level] = states;
        if (!nodes || !states) return -1;
    }
    frontier->capacity = size;
    return 0;
}

/* What went wrong inside the walk (set without the GIL, raised after). */
enum { WALK_OK, WALK_NO_MEMORY, WALK_BAD_TRIE };

static PyObject *trie_masks(PyObject *self, PyObject *args) {
    PyObject *objects[N_ARRAYS];
    Py_ssize_t max_nodes;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOn:trie_masks", &objects[0], &objects[1], &objects[2], &objects[3],
                          &objects[4], &objects[5], &objects[6], &objects[7], &objects[8], &objects[9], &max_nodes))
        return NULL;
    Py_buffer views[N_ARRAYS];
    int held = 0;
    for (; held < N_ARRAYS; held++) {
        int writable = held == OUT || held == DEPTHS;
        int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
        if (PyObject_GetBuffer(objects[held], &views[held], flags) < 0) goto fail;
        if (views[held].itemsize != item_sizes[held]) {
            PyErr_Format(PyExc_TypeError, "trie_masks: %s must have %zd-byte items, not %zd", array_names[held],
                         item_sizes[held], views[held].itemsize);
            held++;
            goto fail;
        }
    }
    const int64_t *child_start = views[CHILD_START].buf, *child_count = views[CHILD_COUNT].buf;
    const int64_t *token_start = views[TOKEN_START].buf, *root_child = views[ROOT_CHILD].buf;
    const int32_t *node_byte = views[NODE_BYTE].buf, *token_ids = views[TOKEN_IDS].buf;
    const int32_t *transitions = views[TRANSITIONS].buf;
    const int64_t *origins = views[ORIGINS].buf;
    uint32_t *out = views[OUT].buf;
    int64_t *depths = views[DEPTHS].buf;
    const Py_ssize_t n_nodes = views[NODE_BYTE].len / 4;
    const Py_ssize_t n_states = views[TRANSITIONS].len / (4 * 256), n_origins = views[ORIGINS].len / 8;
    if (views[ROOT_CHILD].len != 256 * 8 || views[CHILD_START].len / 8 != n_nodes ||
        views[CHILD_COUNT].len / 8 != n_nodes || views[TOKEN_START].len / 8 != n_nodes + 1 ||
        views[TRANSITIONS].len % (4 * 256) != 0 || views[DEPTHS].len / 8 != n_origins || n_origins == 0 ||
        (views[OUT].len / 4) % n_origins != 0) {
        PyErr_SetString(PyExc_ValueError, "trie_masks: array sizes do not fit together");
        goto fail;
    }
    const Py_ssize_t num_words = views[OUT].len / 4 / n_origins;
    for (Py_ssize_t i = 0; i < n_origins; i++) {
        if (origins[i] <= 0 || origins[i] >= n_states) {
            PyErr_Format(PyExc_ValueError, "trie_masks: origin %lld is not a live state", (long long)origins[i]);
            goto fail;
        }
    }

    Py_ssize_t visited = 0;
    int status = WALK_OK;
    Py_BEGIN_ALLOW_THREADS
    /* Level by level: the trie is numbered breadth-first with each node's children contiguous, so a
     * level's frontier (kept in node order) reads the node tables front to back, which a depth-first walk
     * did not (1.5 to 2 times slower on walks of 50k nodes and more). */
    Frontier frontier = {{NULL, NULL}, {NULL, NULL}, 0};
    if (reserve(&frontier, 256) < 0) status = WALK_NO_MEMORY;
    for (Py_ssize_t row = 0; row < n_origins && status == WALK_OK && visited >= 0; row++) {
        uint32_t *words = out + row * num_words;
        int current = 0; /* which of the frontier's two buffers holds the level being expanded */
        int64_t *nodes = frontier.node[0], *next_nodes = frontier.node[1];
        int32_t *states = frontier.state[0], *next_states = frontier.state[1];
        Py_ssize_t size = 0;
        int64_t depth = 0;
        /* The first level straight from the origin's live bytes: the root has a child per first byte. */
        const int32_t *from = transitions + origins[row] * 256;
        for (int byte = 0; byte < 256; byte++) {
            int64_t child = root_child[byte];
            if (child > 0 && child < n_nodes && from[byte] > 0 && from[byte] < n_states) {
                nodes[size] = child;
                states[size] = from[byte];
                size++;
            }
        }
        while (size > 0) {
            depth++;
            visited += size;
            if (visited > max_nodes) {
                visited = -1; /* the caller's bound: this batch fans out too far */
                break;
            }
            Py_ssize_t next_size = 0;
            for (Py_ssize_t i = 0; i < size && status == WALK_OK; i++) {
                int64_t node = nodes[i];
                for (int64_t k = token_start[node]; k < token_start[node + 1]; k++) {
                    int32_t id = token_ids[k];
                    if (id < 0 || (id >> 5) >= num_words) {
                        status = WALK_BAD_TRIE;
                        break;
                    }
                    words[id >> 5] |= (uint32_t)1 << (id & 31);
                }
                int64_t first = child_start[node], count = child_count[node];
                if (first < 0 || count < 0 || first + count > n_nodes) status = WALK_BAD_TRIE;
                if (status != WALK_OK) break;
                if (next_size + count > frontier.capacity) {
                    if (reserve(&frontier, next_size + count) < 0) {
                        status = WALK_NO_MEMORY;
                        break;
                    }
                    nodes = frontier.node[current]; /* realloc may have moved both levels */
                    states = frontier.state[current];
                    next_nodes = frontier.node[1 - current];
                    next_states = frontier.state[1 - current];
                }
                const int32_t *moves = transitions + (Py_ssize_t)states[i] * 256;
                for (int64_t child = first; child < first + count; child++) {
                    /* Written whatever the move, kept only if it lives (0 is the dead state): no branch
                     * to mispredict, and a dead prefix's subtree is never visited. */
                    int32_t next = moves[node_byte[child] & 255];
                    next_nodes[next_size] = child;
                    next_states[next_size] = next;
                    next_size += next > 0;
                    if (next >= n_states) status = WALK_BAD_TRIE;
                }
            }
            if (status != WALK_OK) break;
            current = 1 - current;
            nodes = frontier.node[current];
            states = frontier.state[current];
            next_nodes = frontier.node[1 - current];
            next_states = frontier.state[1 - current];
            size = next_size;
        }
        depths[row] = depth;
    }
    for (int level = 0; level < 2; level++) {
        free(frontier.node[level]);
        free(frontier.state[level]);
    }
    Py_END_ALLOW_THREADS
    for (int i = 0; i < N_ARRAYS; i++) PyBuffer_Release(&views[i]);
    if (status == WALK_NO_MEMORY) return PyErr_NoMemory();
    if (status == WALK_BAD_TRIE) {
        PyErr_SetString(PyExc_ValueError, "trie_masks: the trie or the transition table is malformed");
        return NULL;
    }
    return PyLong_FromSsize_t(visited);
fail:
    for (int i = 0; i < held; i++) PyBuffer_Release(&views[i]);
    return NULL;
}

static PyMethodDef methods[] = {
    {"trie_masks", trie_masks, METH_VARARGS,
     "trie_masks(child_start, child_count, node_byte, token_start, token_ids, root_child, transitions, origins,\n"
     "           out, depths, max_nodes) -> nodes visited, or -1 past max_nodes\n\n"
     "Set in each row of ``out`` (zeroed int32 words, one row per origin) the bits of the tokens whose bytes\n"
     "walk from that origin state without reaching the dead state 0, and in ``depths`` the length of the\n"
     "longest live token prefix. Arrays: int64 except node_byte, token_ids, transitions and out (int32);\n"
     "transitions is the (states, 256) byte table, C-contiguous."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", "Native kernels of outlines_core.", -1, methods};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
