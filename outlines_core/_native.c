/* The engine's native kernels, each beside a Python or numpy version that stays the fallback (a build
 * without a C compiler) and the reference the tests compare it with:
 *   - trie_masks: the trie walk of restrictive DFA states (trie_walk.py);
 *   - walk_tokens, walk_text_run: the loop walk's token walks (loop_walk.py);
 *   - refine_partition: Moore partition refinement (regex/dfa.py: minimization, mask classes);
 *   - determinize: byte classes and subset construction (regex/dfa.py);
 *   - mask_keys: keys of packed masks and their repeats within a batch (index.py);
 *   - distinct_successors: each state's distinct live successors (lookahead.py);
 *   - live_weight_sums, third_level_estimate: per-state sums over live byte classes (index.py, lookahead.py);
 *   - majority_moves: each state's majority move (loop_walk.py);
 *   - text_run_tables: a text run's tables (text_runs.py);
 *   - character_targets: where each state's multi-byte characters lead (loop_walk.py);
 *   - regex_nfa (in _regex_nfa.c): regex text -> byte NFA (regex/parser.py and regex/nfa.py).
 *   - TokenMover: the state after a token, on every decode step (index.py).
 * Each section says why it is native.
 *
 * No numpy headers: arrays come in through the buffer protocol (C-contiguous, item sizes checked), results
 * go out as bytes. The GIL is released while a kernel runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- The trie walk of restrictive states.
 *
 * Why native code: a numpy trie walk pays about ten calls a level, 100 to 250 us a batch of states
 * whatever its size, and that overhead is most of a decode step's first visit to a key, a number or a
 * date and most of a small regex's compile. A walk in C visits each live trie node once at a few
 * nanoseconds: 3 to 9 times less for the same batch (benchmarks/bench_native.py). */

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

/* The buffers of ``objects`` into ``views`` (C-contiguous; those whose bit is set in ``writable``, writable),
 * each checked for its item size. Returns 0, or -1 with a Python error set and nothing held. */
static int get_buffers(const char *kernel, PyObject **objects, Py_buffer *views, int count,
                       const Py_ssize_t *item_sizes, const char **names, unsigned writable) {
    for (int i = 0; i < count; i++) {
        int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | ((writable >> i) & 1 ? PyBUF_WRITABLE : 0);
        int ok = PyObject_GetBuffer(objects[i], &views[i], flags) == 0;
        if (ok && views[i].itemsize != item_sizes[i]) {
            PyErr_Format(PyExc_TypeError, "%s: %s must have %zd-byte items, not %zd", kernel, names[i], item_sizes[i],
                         views[i].itemsize);
            PyBuffer_Release(&views[i]);
            ok = 0;
        }
        if (!ok) {
            while (i-- > 0) PyBuffer_Release(&views[i]);
            return -1;
        }
    }
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
    if (get_buffers("trie_masks", objects, views, N_ARRAYS, item_sizes, array_names, 1u << OUT | 1u << DEPTHS) < 0)
        return NULL;
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
    for (int i = 0; i < N_ARRAYS; i++) PyBuffer_Release(&views[i]);
    return NULL;
}

/* ---- The loop walk's token walks (loop_walk.py's ``LoopWalk.mask``).
 *
 * Why native code: a loop walk decides most tokens of a permissive state (inside a string, free text) with
 * a few vector operations, then walks the others from where their run of text bytes ends: a few thousand
 * to tens of thousands of tokens, most of which die within a byte or two, a few of which (long runs of
 * spaces or dashes) go on for dozens. numpy pays one step of a dozen calls per byte position for all of
 * them, plus jump tables for the long runs and a Python tail for the last survivors: 40 to 60% of a
 * permissive state's first visit. In C each token costs the bytes it walks. */

enum { WT_TRANSITIONS, WT_DATA, WT_TOKENS, WT_STATES, WT_POSITIONS, WT_REMAINING, WT_ALIVE, WT_N };
static const Py_ssize_t wt_item_sizes[WT_N] = {4, 1, 8, 8, 8, 8, 1};
static const char *wt_names[WT_N] = {"transitions", "data", "tokens", "states", "positions", "remaining", "alive"};

/* Walk ``data[begin:end]`` from ``state``: the state reached (0 once dead), or -1 when the table leads
 * outside its ``n_states`` states. */
static inline int64_t walk_bytes(const int32_t *transitions, Py_ssize_t n_states, const uint8_t *byte,
                                 const uint8_t *end, int64_t state) {
    while (byte < end && state != 0) {
        state = transitions[state * 256 + *byte++];
        if (state < 0 || state >= n_states) return -1;
    }
    return state;
}

static PyObject *walk_tokens(PyObject *self, PyObject *args) {
    PyObject *objects[WT_N];
    if (!PyArg_ParseTuple(args, "OOOOOOO:walk_tokens", &objects[0], &objects[1], &objects[2], &objects[3],
                          &objects[4], &objects[5], &objects[6]))
        return NULL;
    Py_buffer views[WT_N];
    if (get_buffers("walk_tokens", objects, views, WT_N, wt_item_sizes, wt_names, 1u << WT_ALIVE) < 0) return NULL;
    const int32_t *transitions = views[WT_TRANSITIONS].buf;
    const uint8_t *data = views[WT_DATA].buf;
    const int64_t *tokens = views[WT_TOKENS].buf, *states = views[WT_STATES].buf;
    const int64_t *positions = views[WT_POSITIONS].buf, *remaining = views[WT_REMAINING].buf;
    uint8_t *alive = views[WT_ALIVE].buf;
    const Py_ssize_t n_states = views[WT_TRANSITIONS].len / (4 * 256), n_data = views[WT_DATA].len;
    const Py_ssize_t n = views[WT_TOKENS].len / 8, n_alive = views[WT_ALIVE].len;
    if (views[WT_TRANSITIONS].len % (4 * 256) != 0 || views[WT_STATES].len / 8 != n ||
        views[WT_POSITIONS].len / 8 != n || views[WT_REMAINING].len / 8 != n) {
        PyErr_SetString(PyExc_ValueError, "walk_tokens: array sizes do not fit together");
        goto fail;
    }
    Py_ssize_t bad = -1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t token = tokens[i], state = states[i], at = positions[i], left = remaining[i];
        if (token < 0 || token >= n_alive || state < 0 || state >= n_states || at < 0 || left < 0 ||
            at + left > n_data) {
            bad = i;
            break;
        }
        int64_t reached = walk_bytes(transitions, n_states, data + at, data + at + left, state);
        if (reached < 0) { /* a malformed table: reported below */
            bad = i;
            break;
        }
        if (reached) alive[token] = 1;
    }
    Py_END_ALLOW_THREADS
    for (int i = 0; i < WT_N; i++) PyBuffer_Release(&views[i]);
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError,
                     "walk_tokens: walk %zd is malformed (its token, state or byte range is outside the arrays, "
                     "or the table leads outside the states)", bad);
        return NULL;
    }
    Py_RETURN_NONE;
fail:
    for (int i = 0; i < WT_N; i++) PyBuffer_Release(&views[i]);
    return NULL;
}

/* ---- The loop walk of one text run (loop_walk.py's ``LoopWalk._text_walk_in_c``).
 *
 * Why native code: where one byte set T makes every move of a state's chain (inside a JSON string, free
 * text, a counted run), numpy picked the tokens to walk with a dozen passes over the vocabulary's tokens
 * outside T (tens of thousands: a pass of gathers, compares and concatenations each), 100 to 200 us of a
 * permissive state's first visit, to walk a few dozen to a few thousand of them. Here the tokens come
 * grouped by the byte a walk would meet first outside T (``TextRun``: tokens starting outside T by first
 * byte, the others by their exit byte, longest prefix first), so whole groups are skipped with one test
 * and each token taken costs the bytes it walks. */

enum { TR_TRANSITIONS, TR_LIVE_BITS, TR_DATA, TR_OFFSETS, TR_OTHERS, TR_PREFIX, TR_LEAD_BOUNDS, TR_EXIT_BOUNDS,
       TR_CHAIN, TR_LONGER, TR_IS_TEXT, TR_ASCII_ONLY, TR_WORDS, TR_MARKED, TR_LEAD_POSITIONS, TR_FIRST_DATA,
       TR_FIRST_OFFSETS, TR_N };
static const Py_ssize_t tr_item_sizes[TR_N] = {4, 8, 1, 8, 8, 8, 8, 8, 8, 8, 1, 1, 4, 8, 4, 1, 8};
static const char *tr_names[TR_N] = {"transitions", "live_bits", "data",   "offsets",    "others",     "prefix",
                                     "lead_bounds", "exit_bounds", "chain_states", "longer", "is_text",
                                     "ascii_only",  "words", "marked", "lead_positions", "first_data",
                                     "first_offsets"};
/* The mask's words are written where the mask is kept: a bool per token cost a 128k-entry array to clear
 * and one to pack per loop walk (10 us of a counted run's 35 us position). */
#define IS_ALIVE(t) ((words[(t) >> 5] >> ((t) & 31)) & 1u)
#define SET_ALIVE(t) (words[(t) >> 5] |= (uint32_t)1 << ((t) & 31))

static PyObject *walk_text_run(PyObject *self, PyObject *args) {
    PyObject *objects[TR_N];
    int looping;
    Py_ssize_t min_length, up_to;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOOOOpnnOOO:walk_text_run", &objects[0], &objects[1], &objects[2],
                          &objects[3], &objects[4], &objects[5], &objects[6], &objects[7], &objects[8], &objects[9],
                          &objects[10], &objects[11], &objects[12], &objects[13], &looping, &min_length, &up_to,
                          &objects[14], &objects[15], &objects[16]))
        return NULL;
    Py_buffer views[TR_N];
    if (get_buffers("walk_text_run", objects, views, TR_N, tr_item_sizes, tr_names, 1u << TR_WORDS) < 0) return NULL;
    const int32_t *transitions = views[TR_TRANSITIONS].buf;
    const uint64_t *live_bits = views[TR_LIVE_BITS].buf;
    const uint8_t *data = views[TR_DATA].buf;
    const int64_t *offsets = views[TR_OFFSETS].buf, *others = views[TR_OTHERS].buf, *prefix = views[TR_PREFIX].buf;
    const int64_t *lead = views[TR_LEAD_BOUNDS].buf, *exits = views[TR_EXIT_BOUNDS].buf;
    const int64_t *chain = views[TR_CHAIN].buf, *longer = views[TR_LONGER].buf;
    const uint8_t *is_text = views[TR_IS_TEXT].buf, *ascii_only = views[TR_ASCII_ONLY].buf;
    uint32_t *words = views[TR_WORDS].buf;
    const int64_t *marked = views[TR_MARKED].buf;
    const int32_t *lead_positions = views[TR_LEAD_POSITIONS].buf;
    const uint8_t *first_data = views[TR_FIRST_DATA].buf;
    const int64_t *first_offsets = views[TR_FIRST_OFFSETS].buf;
    const Py_ssize_t n_first = views[TR_FIRST_OFFSETS].len / 8 - 1, n_first_data = views[TR_FIRST_DATA].len;
    const Py_ssize_t n_states = views[TR_TRANSITIONS].len / (4 * 256), n_data = views[TR_DATA].len;
    const Py_ssize_t n_tokens = views[TR_OFFSETS].len / 8, n_others = views[TR_OTHERS].len / 8;
    const Py_ssize_t n_chain = views[TR_CHAIN].len / 8, n_longer = views[TR_LONGER].len / 8;
    const Py_ssize_t n_marked = views[TR_MARKED].len / 8;
    const char *problem = NULL;
    if (views[TR_TRANSITIONS].len % (4 * 256) != 0 || n_states == 0 || views[TR_LIVE_BITS].len != n_states * 32 ||
        views[TR_PREFIX].len / 8 != n_others || views[TR_LEAD_BOUNDS].len != 257 * 8 ||
        views[TR_EXIT_BOUNDS].len != 257 * 8 || views[TR_IS_TEXT].len != n_tokens ||
        views[TR_ASCII_ONLY].len != n_tokens || views[TR_WORDS].len / 4 < (n_tokens + 31) / 32 || n_chain == 0 ||
        min_length < 0 || up_to < 0)
        problem = "array sizes do not fit together";
    for (Py_ssize_t i = 0; !problem && i < n_marked; i++)
        if (marked[i] < 0 || marked[i] >= n_tokens) problem = "a marked token is not a token";
    for (Py_ssize_t i = 0; !problem && i < 256; i++)
        if (lead[i] > lead[i + 1] || exits[i] > exits[i + 1]) problem = "bounds must not decrease";
    if (!problem && (lead[0] != 0 || lead[256] != exits[0] || exits[256] != n_others))
        problem = "bounds must split the others: first bytes, then exit bytes";
    if (!problem && (views[TR_LEAD_POSITIONS].len / 4 != lead[256] || n_first < 0))
        problem = "lead_positions must have one entry per token of the first-byte groups, first_offsets one more "
                  "than the tokens they order";
    for (Py_ssize_t i = 0; !problem && i < n_chain; i++)
        if (chain[i] < 0 || chain[i] >= n_states) problem = "a chain state is not a state";
    if (problem) {
        for (int i = 0; i < TR_N; i++) PyBuffer_Release(&views[i]);
        PyErr_Format(PyExc_ValueError, "walk_text_run: %s", problem);
        return NULL;
    }
    const Py_ssize_t steps = n_chain - 1;
    const int64_t origin = chain[0], last = chain[steps];
    Py_ssize_t bad = -1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n_marked; i++) SET_ALIVE(marked[i]); /* the chained tokens, alive unwalked */
    /* The bytes some chain state takes: an exit byte none takes kills its token where it exits. */
    uint64_t exit_live[4] = {0, 0, 0, 0};
    for (Py_ssize_t i = 0; i < n_chain; i++)
        for (int word = 0; word < 4; word++) exit_live[word] |= live_bits[chain[i] * 4 + word];
#define TOKEN_BYTES(t, begin, end)                                                                   \
    const uint8_t *begin = data + offsets[t];                                                        \
    const uint8_t *end = data + ((t) + 1 < n_tokens ? offsets[(t) + 1] : n_data);                    \
    if (offsets[t] < 0 || begin > end || end > data + n_data) { bad = t; goto done; }
    /* Tokens starting outside T: only those whose first byte the state takes. Their bytes are read from
     * the vocabulary's copy in first-byte order (``lead_positions``: each one's place there), where a
     * group's tokens lie one after the other: read by token id, 6,000 tokens starting with "." cost an
     * e-mail label's walk 100 us of cache misses. */
    for (int byte = 0; byte < 256; byte++) {
        if (transitions[origin * 256 + byte] == 0) continue;
        for (int64_t i = lead[byte]; i < lead[byte + 1]; i++) {
            int64_t token = others[i], at = lead_positions[i];
            if (token < 0 || token >= n_tokens || at < 0 || at >= n_first) { bad = token; goto done; }
            const uint8_t *begin = first_data + first_offsets[at], *end = first_data + first_offsets[at + 1];
            if (first_offsets[at] < 0 || begin > end || end > first_data + n_first_data) { bad = token; goto done; }
            if (end - begin <= min_length) continue;
            int64_t reached = walk_bytes(transitions, n_states, begin, end, origin);
            if (reached < 0) { bad = token; goto done; }
            if (reached) SET_ALIVE(token);
        }
    }
    /* Tokens with a prefix in T: those whose exit byte some chain state takes, and on a counted run those
     * whose prefix outruns the chain (listed first in their group), which walk on from its end. */
    for (int byte = 0; byte < 256; byte++) {
        int taken = (exit_live[byte >> 6] >> (byte & 63)) & 1;
        if (!taken && looping) continue;
        for (int64_t i = exits[byte]; i < exits[byte + 1]; i++) {
            int64_t token = others[i], run = prefix[i];
            if (!taken && run <= steps) break;
            if (token < 0 || token >= n_tokens) { bad = token; goto done; }
            TOKEN_BYTES(token, begin, end)
            if (run < 0 || run >= end - begin) { bad = token; goto done; }
            if (end - begin <= min_length) continue;
            int64_t jump = looping || run <= steps ? run : steps;
            int64_t reached = walk_bytes(transitions, n_states, begin + jump, end, chain[jump < steps ? jump : steps]);
            if (reached < 0) { bad = token; goto done; }
            if (reached) SET_ALIVE(token);
        }
    }
    /* A counted run's text tokens longer than its chain (not alive yet): the ASCII ones walk on from the
     * chain's end after ``up_to`` bytes, the others from the start. */
    for (Py_ssize_t i = 0; i < n_longer; i++) {
        int64_t token = longer[i];
        if (token < 0 || token >= n_tokens) { bad = token; goto done; }
        if (!is_text[token] || IS_ALIVE(token)) continue;
        TOKEN_BYTES(token, begin, end)
        if (end - begin <= min_length) continue;
        int skip = ascii_only[token] != 0;
        if (skip && end - begin < up_to) { bad = token; goto done; }
        int64_t reached = walk_bytes(transitions, n_states, begin + (skip ? up_to : 0), end, skip ? last : origin);
        if (reached < 0) { bad = token; goto done; }
        if (reached) SET_ALIVE(token);
    }
#undef TOKEN_BYTES
done:
    Py_END_ALLOW_THREADS
    for (int i = 0; i < TR_N; i++) PyBuffer_Release(&views[i]);
    if (bad >= 0) {
        PyErr_Format(PyExc_ValueError,
                     "walk_text_run: token %lld is malformed (its id, bytes or prefix lie outside the arrays, or "
                     "the table leads outside the states)", (long long)bad);
        return NULL;
    }
    Py_RETURN_NONE;
}
#undef IS_ALIVE
#undef SET_ALIVE

/* ---- A text run's tables (text_runs.py's ``build``).
 *
 * Why native code: built once per vocabulary and byte set, but inside the first request that meets the set
 * (an e-mail address's three labels, a sentence's letters): numpy spent 3 to 5 ms a set on a 128k vocabulary
 * in a dozen passes of gathers, sorts and concatenations (its byte-position stepping alone 2 ms a pass),
 * most of such a request's compile. Here: one pass
 * over the tokens outside the set for their runs, two counting sorts for their order. */

enum { TT_DATA, TT_OFFSETS, TT_LENGTHS, TT_OTHER, TT_SINGLE, TT_PLACE, TT_OTHERS, TT_PREFIX, TT_RESUME,
       TT_LEAD_BOUNDS, TT_EXIT_BYTE, TT_EXIT_BOUNDS, TT_LEAD_POSITIONS, TT_N };
static const Py_ssize_t tt_item_sizes[TT_N] = {1, 8, 8, 1, 1, 4, 8, 8, 8, 8, 1, 8, 4};
static const char *tt_names[TT_N] = {"data",   "offsets",     "lengths",   "other",       "single",
                                     "place",  "others",      "prefix",    "resume",      "lead_bounds",
                                     "exit_byte", "exit_bounds", "lead_positions"};
enum { TT_OK, TT_NO_MEMORY, TT_BAD_TOKEN, TT_WHOLE_RUN, TT_COUNT };

static inline int64_t run_within(const uint8_t *byte, int64_t left, const uint8_t *single) {
    const uint8_t *start = byte, *end = byte + (left > 0 ? left : 0);
    while (byte < end && single[*byte]) byte++;
    return byte - start;
}

static PyObject *text_run_tables(PyObject *self, PyObject *args) {
    PyObject *objects[TT_N];
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOOOO:text_run_tables", &objects[0], &objects[1], &objects[2],
                          &objects[3], &objects[4], &objects[5], &objects[6], &objects[7], &objects[8], &objects[9],
                          &objects[10], &objects[11], &objects[12]))
        return NULL;
    Py_buffer views[TT_N];
    const unsigned writable = (1u << TT_OTHERS) | (1u << TT_PREFIX) | (1u << TT_RESUME) | (1u << TT_LEAD_BOUNDS) |
                              (1u << TT_EXIT_BYTE) | (1u << TT_EXIT_BOUNDS) | (1u << TT_LEAD_POSITIONS);
    if (get_buffers("text_run_tables", objects, views, TT_N, tt_item_sizes, tt_names, writable) < 0) return NULL;
    const uint8_t *data = views[TT_DATA].buf, *other = views[TT_OTHER].buf, *single = views[TT_SINGLE].buf;
    const int64_t *offsets = views[TT_OFFSETS].buf, *lengths = views[TT_LENGTHS].buf;
    const int32_t *place = views[TT_PLACE].buf;
    int64_t *others = views[TT_OTHERS].buf, *prefix = views[TT_PREFIX].buf, *resume = views[TT_RESUME].buf;
    int64_t *lead_bounds = views[TT_LEAD_BOUNDS].buf, *exit_bounds = views[TT_EXIT_BOUNDS].buf;
    uint8_t *exit_byte = views[TT_EXIT_BYTE].buf;
    int32_t *lead_positions = views[TT_LEAD_POSITIONS].buf;
    const Py_ssize_t n = views[TT_OFFSETS].len / 8, m = views[TT_OTHERS].len / 8, n_data = views[TT_DATA].len;
    PyObject *result = NULL;
    if (views[TT_LENGTHS].len / 8 != n || views[TT_OTHER].len != n || views[TT_PLACE].len / 4 != n ||
        views[TT_SINGLE].len != 256 || views[TT_PREFIX].len / 8 != m || views[TT_RESUME].len / 8 != m ||
        views[TT_EXIT_BYTE].len != m || views[TT_LEAD_POSITIONS].len / 4 != m || views[TT_LEAD_BOUNDS].len != 257 * 8 ||
        views[TT_EXIT_BOUNDS].len != 257 * 8) {
        PyErr_SetString(PyExc_ValueError, "text_run_tables: array sizes do not fit together (one entry per token "
                                          "in offsets, lengths, other, place; one per other token in the outputs; "
                                          "256 single flags; 257 bounds each)");
        goto done;
    }
    int error = TT_OK;
    Py_ssize_t bad = -1, n_bare = 0;
    /* Per other token j (in id order): its id, runs and exit byte; then the order of the ones with a prefix. */
    int64_t *ids = malloc((size_t)(m ? m : 1) * sizeof(int64_t));
    int64_t *runs = malloc((size_t)(m ? m : 1) * 2 * sizeof(int64_t));
    Py_ssize_t *order = malloc((size_t)(m ? m : 1) * sizeof(Py_ssize_t));
    int64_t *by_prefix = NULL;
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t lead_count[256] = {0}, exit_count[256] = {0}, j = 0;
    int64_t longest_prefix = 0;
    if (!ids || !runs || !order) {
        error = TT_NO_MEMORY;
        goto walked;
    }
    for (Py_ssize_t token = 0; token < n; token++) {
        if (!other[token]) continue;
        const int64_t at = offsets[token], length = lengths[token];
        if (j >= m) {
            error = TT_COUNT;
            goto walked;
        }
        if (at < 0 || length < 1 || at + length > n_data) {
            error = TT_BAD_TOKEN, bad = token;
            goto walked;
        }
        const int64_t run = run_within(data + at, length, single);
        if (run == length) { /* no byte outside the set: it should have been text */
            error = TT_WHOLE_RUN, bad = token;
            goto walked;
        }
        ids[j] = token;
        runs[2 * j] = run;
        runs[2 * j + 1] = run_within(data + at + run + 1, length - run - 1, single);
        if (run == 0) lead_count[data[at]]++;
        else {
            exit_count[data[at + run]]++;
            if (run > longest_prefix) longest_prefix = run;
        }
        j++;
    }
    if (j != m) {
        error = TT_COUNT;
        goto walked;
    }
    /* The tokens with no prefix, by first byte (id order within one). */
    lead_bounds[0] = 0;
    for (int b = 0; b < 256; b++) lead_bounds[b + 1] = lead_bounds[b] + lead_count[b];
    n_bare = lead_bounds[256];
    exit_bounds[0] = n_bare;
    for (int b = 0; b < 256; b++) exit_bounds[b + 1] = exit_bounds[b] + exit_count[b];
    int64_t cursor[256];
    memcpy(cursor, lead_bounds, sizeof cursor);
    for (Py_ssize_t k = 0; k < m; k++) {
        if (runs[2 * k]) continue;
        const int64_t at = cursor[data[offsets[ids[k]]]]++;
        others[at] = ids[k], prefix[at] = 0, resume[at] = runs[2 * k + 1];
        lead_positions[at] = place[ids[k]];
    }
    /* The others by exit byte, the longest prefix first, then by id: a counting sort by prefix (longest
     * first, stable), then a stable one by exit byte. */
    by_prefix = calloc((size_t)longest_prefix + 2, sizeof(int64_t));
    if (!by_prefix) {
        error = TT_NO_MEMORY;
        goto walked;
    }
    for (Py_ssize_t k = 0; k < m; k++)
        if (runs[2 * k]) by_prefix[longest_prefix - runs[2 * k] + 1]++;
    for (int64_t p = 0; p <= longest_prefix; p++) by_prefix[p + 1] += by_prefix[p];
    for (Py_ssize_t k = 0; k < m; k++)
        if (runs[2 * k]) order[by_prefix[longest_prefix - runs[2 * k]]++] = k;
    memcpy(cursor, exit_bounds, sizeof cursor);
    const Py_ssize_t n_jumping = m - n_bare;
    for (Py_ssize_t i = 0; i < n_jumping; i++) {
        const Py_ssize_t k = order[i];
        const uint8_t leaving = data[offsets[ids[k]] + runs[2 * k]];
        const int64_t at = cursor[leaving]++;
        others[at] = ids[k], prefix[at] = runs[2 * k], resume[at] = runs[2 * k + 1];
        exit_byte[at - n_bare] = leaving;
    }
walked:;
    Py_END_ALLOW_THREADS
    free(ids), free(runs), free(order), free(by_prefix);
    if (error == TT_NO_MEMORY) PyErr_NoMemory();
    else if (error == TT_BAD_TOKEN)
        PyErr_Format(PyExc_ValueError, "text_run_tables: token %zd's bytes lie outside data", bad);
    else if (error == TT_WHOLE_RUN)
        PyErr_Format(PyExc_ValueError, "text_run_tables: token %zd is marked other but all its bytes are single moves",
                     bad);
    else if (error == TT_COUNT)
        PyErr_SetString(PyExc_ValueError, "text_run_tables: the outputs must hold one entry per token marked other");
    else result = PyLong_FromSsize_t(n_bare);
done:
    for (int i = 0; i < TT_N; i++) PyBuffer_Release(&views[i]);
    return result;
}

/* ---- Moore partition refinement (regex/dfa.py's ``_refine``; its numpy and Python versions are the
 * fallback and the tests' reference).
 *
 * Why native code: minimizing a DFA and finding its mask classes refine a partition one round per byte of
 * the longest string that tells two states apart, and a JSON schema's counted runs (a label of up to 63
 * characters) take a hundred rounds or more. A round in numpy costs a few dozen calls whatever its size
 * (nested-8: 8 ms of a 38 ms compile), in Python about half a microsecond a state; in C it costs what its
 * states do.
 *
 * A round gives each state looked at the signature (its block, the blocks of its successors) and splits
 * blocks by signature. Only states whose signature can have changed are looked at: in the first round
 * those of blocks with two or more members, then the predecessors of the states that moved to a new
 * block. A looked-at state has a successor that just moved, so it differs from every member of its block
 * that was not looked at: those keep the block's id, and so does, in a block whose members were all
 * looked at, its largest group (ties: the first seen); every other group takes a new id. */

static inline uint64_t mix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* ``labels`` (ids below n) renumbered 0..k-1 in order of first appearance into ``out``; ``map``: n entries. */
static void by_first_appearance(const int32_t *labels, int64_t *out, int32_t *map, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) map[i] = -1;
    int32_t next = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (map[labels[i]] < 0) map[labels[i]] = next++;
        out[i] = map[labels[i]];
    }
}

static PyObject *refine_partition(PyObject *self, PyObject *args) {
    PyObject *objects[3];
    Py_ssize_t max_rounds;
    if (!PyArg_ParseTuple(args, "OOOn:refine_partition", &objects[0], &objects[1], &objects[2], &max_rounds))
        return NULL;
    Py_buffer views[3];
    int held = 0;
    for (; held < 3; held++) {
        int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (held == 1 ? PyBUF_WRITABLE : 0);
        if (PyObject_GetBuffer(objects[held], &views[held], flags) < 0) break;
    }
    PyObject *result = NULL;
    int32_t *work = NULL;
    int64_t *recorded_blocks = NULL, *recorded_rounds = NULL;
    if (held < 3) goto done;
    const Py_ssize_t n = views[1].len / 8, n_recordable = views[2].len / 8;
    if (views[0].itemsize != 4 || views[1].itemsize != 8 || views[2].itemsize != 8) {
        PyErr_SetString(PyExc_TypeError, "refine_partition: table must have int32 items, block and rounds int64");
        goto done;
    }
    if (n == 0 || views[0].len == 0 || views[0].len % (4 * n) != 0 || n > INT32_MAX / 2) {
        PyErr_SetString(PyExc_ValueError, "refine_partition: the table must have one non-empty row per state");
        goto done;
    }
    const Py_ssize_t k = views[0].len / 4 / n;
    const int32_t *table = views[0].buf;
    int64_t *block_io = views[1].buf;
    const int64_t *record_at = views[2].buf;
    for (Py_ssize_t i = 0; i < n * k; i++) {
        if (table[i] < 0 || table[i] >= n) {
            PyErr_Format(PyExc_ValueError, "refine_partition: table entry %lld is not a state", (long long)table[i]);
            goto done;
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        if (block_io[i] < 0 || block_io[i] >= n) {
            PyErr_Format(PyExc_ValueError, "refine_partition: block id %lld is out of range", (long long)block_io[i]);
            goto done;
        }
    }
    for (Py_ssize_t i = 1; i < n_recordable; i++) {
        if (record_at[i] <= record_at[i - 1]) {
            PyErr_SetString(PyExc_ValueError, "refine_partition: the rounds to record must increase");
            goto done;
        }
    }
    Py_ssize_t slots = 16;
    while (slots < 2 * n) slots *= 2;
    /* One allocation: a hash weight per column (8 bytes), 13 arrays of n entries, two row starts (n + 1
     * each), the rows' entries as columns and targets, the predecessors (one per entry) and the hash
     * slots. */
    work = malloc((size_t)(2 * k + 15 * n + 2 + 3 * n * k + slots) * sizeof(int32_t));
    recorded_blocks = n_recordable ? malloc((size_t)(n_recordable * n) * sizeof(int64_t)) : NULL;
    recorded_rounds = n_recordable ? malloc((size_t)n_recordable * sizeof(int64_t)) : NULL;
    if (!work || (n_recordable && (!recorded_blocks || !recorded_rounds))) {
        PyErr_NoMemory();
        goto done;
    }
    uint64_t *weights = (uint64_t *)work; /* first: 8-byte aligned */
    int32_t *block = work + 2 * k, *size = block + n, *looked_at = size + n, *next_looked = looked_at + n;
    int32_t *group_of = next_looked + n, *group_rep = group_of + n, *group_size = group_rep + n;
    int32_t *new_id = group_size + n, *looked_per_block = new_id + n, *keeper = looked_per_block + n;
    int32_t *stamp = keeper + n, *moved = stamp + n, *cursor = moved + n, *pred_start = cursor + n;
    int32_t *entry_start = pred_start + n + 1, *entry_column = entry_start + n + 1;
    int32_t *entry_target = entry_column + n * k, *preds = entry_target + n * k, *slot = preds + n * k;
    Py_ssize_t n_recorded = 0, next_record = 0;

    Py_BEGIN_ALLOW_THREADS
    int32_t n_blocks = 0;
    for (Py_ssize_t c = 0; c < k; c++) weights[c] = mix64((uint64_t)c + 0x5EEDULL) | 1;
    /* The initial labels by first appearance: block ids 0..n_blocks-1, new ones taken after them. */
    for (Py_ssize_t s = 0; s < n; s++) keeper[s] = -1;
    for (Py_ssize_t s = 0; s < n; s++) {
        if (keeper[block_io[s]] < 0) keeper[block_io[s]] = n_blocks++;
        block[s] = keeper[block_io[s]];
    }
    for (Py_ssize_t s = 0; s < n; s++) {
        size[s] = 0;
        looked_per_block[s] = 0;
        keeper[s] = -1;
        stamp[s] = 0;
    }
    for (Py_ssize_t s = 0; s < n; s++) size[block[s]]++;
    /* Rows as their entries (column, target). Where state 0 (the dead state) is alone in its block it stays
     * alone, so a move to it tells nothing a row's other entries do not: rows keep only their moves to
     * other states (nested-8: 16 of 71 a row), and two rows are alike when those are. */
    const int sparse = size[block[0]] == 1;
    Py_ssize_t n_entries = 0;
    for (Py_ssize_t s = 0; s < n; s++) {
        entry_start[s] = (int32_t)n_entries;
        for (Py_ssize_t c = 0; c < k; c++) {
            const int32_t target = table[s * k + c];
            entry_column[n_entries] = (int32_t)c;
            entry_target[n_entries] = target;
            n_entries += !sparse || target != 0;
        }
    }
    entry_start[n] = (int32_t)n_entries;
    /* Each state's predecessors over the entries, as compressed rows. */
    for (Py_ssize_t s = 0; s <= n; s++) pred_start[s] = 0;
    for (Py_ssize_t e = 0; e < n_entries; e++) pred_start[entry_target[e] + 1]++;
    for (Py_ssize_t s = 0; s < n; s++) {
        pred_start[s + 1] += pred_start[s];
        cursor[s] = pred_start[s];
    }
    for (Py_ssize_t s = 0; s < n; s++)
        for (int32_t e = entry_start[s]; e < entry_start[s + 1]; e++) preds[cursor[entry_target[e]]++] = (int32_t)s;
    Py_ssize_t n_looked = 0;
    for (Py_ssize_t s = 0; s < n; s++)
        if (size[block[s]] > 1) looked_at[n_looked++] = (int32_t)s;

    int64_t rounds = 0;
    while (max_rounds < 0 || rounds < max_rounds) {
        rounds++;
        if (n_looked == 0) break;
        /* Group the looked-at states by signature: a hash table of group ids, rows compared exactly. */
        for (Py_ssize_t i = 0; i < slots; i++) slot[i] = -1;
        int32_t n_groups = 0;
        for (Py_ssize_t i = 0; i < n_looked; i++) {
            const int32_t s = looked_at[i], first = entry_start[s], count = entry_start[s + 1] - first;
            /* A weighted sum (the products independent of each other, unlike a chained hash), mixed once. */
            uint64_t h = (uint64_t)block[s] * 0x9e3779b97f4a7c15ULL + (uint64_t)count;
            for (int32_t e = first; e < first + count; e++)
                h += ((uint64_t)block[entry_target[e]] + 1) * weights[entry_column[e]];
            h = mix64(h);
            Py_ssize_t at = (Py_ssize_t)(h & (uint64_t)(slots - 1));
            int32_t group = -1;
            while (slot[at] >= 0) {
                const int32_t r = group_rep[slot[at]], other = entry_start[r];
                if (block[r] == block[s] && entry_start[r + 1] - other == count) {
                    int32_t e = 0;
                    while (e < count && entry_column[other + e] == entry_column[first + e] &&
                           block[entry_target[other + e]] == block[entry_target[first + e]])
                        e++;
                    if (e == count) {
                        group = slot[at];
                        break;
                    }
                }
                at = (at + 1) & (slots - 1);
            }
            if (group < 0) {
                group = n_groups++;
                slot[at] = group;
                group_rep[group] = s;
                group_size[group] = 0;
            }
            group_size[group]++;
            group_of[i] = group;
            looked_per_block[block[s]]++;
        }
        /* In a wholly looked-at block the largest group keeps the id; every other group takes a new one. */
        for (int32_t g = 0; g < n_groups; g++) {
            const int32_t b = block[group_rep[g]];
            if (looked_per_block[b] == size[b] && (keeper[b] < 0 || group_size[g] > group_size[keeper[b]]))
                keeper[b] = g;
        }
        for (int32_t g = 0; g < n_groups; g++) {
            const int32_t b = block[group_rep[g]];
            new_id[g] = keeper[b] == g ? b : n_blocks++;
        }
        for (int32_t g = 0; g < n_groups; g++) {
            const int32_t b = block[group_rep[g]];
            looked_per_block[b] = 0;
            keeper[b] = -1;
        }
        Py_ssize_t n_moved = 0;
        for (Py_ssize_t i = 0; i < n_looked; i++) {
            const int32_t s = looked_at[i], to = new_id[group_of[i]];
            if (to != block[s]) {
                size[block[s]]--;
                size[to]++;
                block[s] = to;
                moved[n_moved++] = s;
            }
        }
        if (n_moved == 0) break;
        while (next_record < n_recordable && record_at[next_record] < rounds) next_record++;
        if (next_record < n_recordable && record_at[next_record] == rounds) {
            by_first_appearance(block, recorded_blocks + n_recorded * n, group_rep, n);
            recorded_rounds[n_recorded++] = rounds;
        }
        /* Next round: the predecessors of the moved states, in blocks that can still split. */
        Py_ssize_t n_next = 0;
        for (Py_ssize_t i = 0; i < n_moved; i++) {
            const int32_t s = moved[i];
            for (int32_t at = pred_start[s]; at < pred_start[s + 1]; at++) {
                const int32_t p = preds[at];
                if (stamp[p] != rounds && size[block[p]] > 1) {
                    stamp[p] = (int32_t)rounds;
                    next_looked[n_next++] = p;
                }
            }
        }
        int32_t *swap = looked_at;
        looked_at = next_looked;
        next_looked = swap;
        n_looked = n_next;
    }
    by_first_appearance(block, block_io, group_rep, n);
    Py_END_ALLOW_THREADS

    result = PyList_New(n_recorded);
    for (Py_ssize_t i = 0; result && i < n_recorded; i++) {
        PyObject *data = PyByteArray_FromStringAndSize((const char *)(recorded_blocks + i * n), n * 8);
        PyObject *entry = data ? Py_BuildValue("(LN)", (long long)recorded_rounds[i], data) : NULL;
        if (!entry) {
            Py_CLEAR(result);
            break;
        }
        PyList_SET_ITEM(result, i, entry);
    }
done:
    free(work);
    free(recorded_blocks);
    free(recorded_rounds);
    for (int i = 0; i < held; i++) PyBuffer_Release(&views[i]);
    return result;
}

/* ---- Subset construction (regex/dfa.py's ``_byte_classes`` and ``_determinize``, whose Python versions
 * are the fallback and the tests' reference: both build the same table, state for state).
 *
 * Why native code: a DFA state is a set of NFA states, found again by hashing, and each of its byte
 * classes moves to the closure of another such set. Sets, dictionaries and closures are Python's most
 * costly objects and none of it vectorizes: nested-8's 1,851 states cost 12 ms of a 33 ms compile. */

/* A growable array of int32 or of Py_ssize_t. */
typedef struct { int32_t *data; Py_ssize_t size, capacity; } Ints;
typedef struct { Py_ssize_t *data; Py_ssize_t size, capacity; } Sizes;

static int ints_reserve(Ints *v, Py_ssize_t extra) {
    if (v->size + extra <= v->capacity) return 0;
    Py_ssize_t capacity = v->capacity ? v->capacity : 256;
    while (capacity < v->size + extra) capacity *= 2;
    int32_t *data = realloc(v->data, (size_t)capacity * sizeof(int32_t));
    if (!data) return -1;
    v->data = data;
    v->capacity = capacity;
    return 0;
}

static int sizes_push(Sizes *v, Py_ssize_t value) {
    if (v->size == v->capacity) {
        Py_ssize_t capacity = v->capacity ? 2 * v->capacity : 256;
        Py_ssize_t *data = realloc(v->data, (size_t)capacity * sizeof(Py_ssize_t));
        if (!data) return -1;
        v->data = data;
        v->capacity = capacity;
    }
    v->data[v->size++] = value;
    return 0;
}

/* Sets of NFA states (sorted, distinct) stored one after the other, each mapped to a value, found by hash. */
typedef struct {
    Ints members;
    Sizes offsets; /* set i is members[offsets[i] .. offsets[i + 1]) */
    Ints values;
    int32_t *slots; /* set ids, -1 where empty */
    Py_ssize_t n_slots;
} SetMap;

static uint64_t hash_members(const int32_t *members, Py_ssize_t count) {
    uint64_t h = (uint64_t)count * 0x9e3779b97f4a7c15ULL;
    for (Py_ssize_t i = 0; i < count; i++) h = (h ^ (uint32_t)members[i]) * 0x100000001b3ULL;
    return mix64(h);
}

static int setmap_init(SetMap *map) {
    memset(map, 0, sizeof *map);
    map->n_slots = 1024;
    map->slots = malloc((size_t)map->n_slots * sizeof(int32_t));
    if (!map->slots || sizes_push(&map->offsets, 0) < 0) return -1;
    for (Py_ssize_t i = 0; i < map->n_slots; i++) map->slots[i] = -1;
    return 0;
}

static void setmap_free(SetMap *map) {
    free(map->members.data);
    free(map->offsets.data);
    free(map->values.data);
    free(map->slots);
}

/* The slot holding this set, or the empty slot where it would go. */
static Py_ssize_t setmap_slot(const SetMap *map, const int32_t *members, Py_ssize_t count, uint64_t h) {
    Py_ssize_t at = (Py_ssize_t)(h & (uint64_t)(map->n_slots - 1));
    while (map->slots[at] >= 0) {
        const int32_t id = map->slots[at];
        const Py_ssize_t begin = map->offsets.data[id], length = map->offsets.data[id + 1] - begin;
        if (length == count && memcmp(map->members.data + begin, members, (size_t)count * sizeof(int32_t)) == 0)
            return at;
        at = (at + 1) & (map->n_slots - 1);
    }
    return at;
}

static int32_t setmap_get(const SetMap *map, const int32_t *members, Py_ssize_t count, uint64_t h) {
    const int32_t id = map->slots[setmap_slot(map, members, count, h)];
    return id < 0 ? -1 : map->values.data[id];
}

static int setmap_add(SetMap *map, const int32_t *members, Py_ssize_t count, uint64_t h, int32_t value) {
    const Py_ssize_t n_sets = map->offsets.size - 1;
    if (2 * (n_sets + 1) > map->n_slots) { /* grow and re-slot every set */
        Py_ssize_t n_slots = 2 * map->n_slots;
        int32_t *slots = malloc((size_t)n_slots * sizeof(int32_t));
        if (!slots) return -1;
        for (Py_ssize_t i = 0; i < n_slots; i++) slots[i] = -1;
        free(map->slots);
        map->slots = slots;
        map->n_slots = n_slots;
        for (Py_ssize_t id = 0; id < n_sets; id++) {
            const Py_ssize_t begin = map->offsets.data[id], length = map->offsets.data[id + 1] - begin;
            const int32_t *set = map->members.data + begin;
            map->slots[setmap_slot(map, set, length, hash_members(set, length))] = (int32_t)id;
        }
    }
    if (ints_reserve(&map->members, count) < 0 || ints_reserve(&map->values, 1) < 0) return -1;
    const Py_ssize_t at = setmap_slot(map, members, count, h);
    memcpy(map->members.data + map->members.size, members, (size_t)count * sizeof(int32_t));
    map->members.size += count;
    if (sizes_push(&map->offsets, map->members.size) < 0) return -1;
    map->values.data[map->values.size++] = value;
    map->slots[at] = (int32_t)n_sets;
    return 0;
}

static int compare_ints(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

static void sort_ints(int32_t *values, Py_ssize_t count) {
    if (count > 32) {
        qsort(values, (size_t)count, sizeof(int32_t), compare_ints);
        return;
    }
    for (Py_ssize_t i = 1; i < count; i++) { /* insertion sort: most move sets have one to a few members */
        const int32_t value = values[i];
        Py_ssize_t j = i;
        for (; j > 0 && values[j - 1] > value; j--) values[j] = values[j - 1];
        values[j] = value;
    }
}

/* Compressed rows from (row, value) pairs, ``rows[i * row_stride]`` and ``values[i * value_stride]`` (the
pair's index where ``values`` is NULL), pairs where ``keep`` is 0 left out: starts (n_rows + 1 entries)
and the values, row by row. */
static int compress(Py_ssize_t n_rows, Py_ssize_t n_pairs, const int32_t *rows, Py_ssize_t row_stride,
                    const int32_t *values, Py_ssize_t value_stride, const uint8_t *keep, Py_ssize_t **starts_out,
                    int32_t **values_out) {
    Py_ssize_t *starts = calloc((size_t)n_rows + 1, sizeof(Py_ssize_t));
    int32_t *out = malloc((size_t)(n_pairs ? n_pairs : 1) * sizeof(int32_t));
    Py_ssize_t *cursor = malloc((size_t)(n_rows ? n_rows : 1) * sizeof(Py_ssize_t));
    if (!starts || !out || !cursor) {
        free(starts);
        free(out);
        free(cursor);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n_pairs; i++)
        if (!keep || keep[i]) starts[rows[i * row_stride] + 1]++;
    for (Py_ssize_t r = 0; r < n_rows; r++) {
        starts[r + 1] += starts[r];
        cursor[r] = starts[r];
    }
    for (Py_ssize_t i = 0; i < n_pairs; i++)
        if (!keep || keep[i]) out[cursor[rows[i * row_stride]]++] = values ? values[i * value_stride] : (int32_t)i;
    free(cursor);
    *starts_out = starts;
    *values_out = out;
    return 0;
}

enum { DET_OK, DET_NO_MEMORY, DET_TOO_LARGE, DET_TOO_COSTLY };

/* Set members merged (closures computed and unions taken) before a determinization gives up: a pattern of
 * many optional parts in a row, ``(a?){n}``, has a small DFA, but each of its n states merges n closures
 * of up to n members (n^3 work, n^2 memory: fifteen seconds at n = 5000, and more than a minute at 10000;
 * now a DfaTooLargeError within two seconds). Every benchmark case determinizes within a thousandth of it. */
#define DET_WORK_LIMIT 400000000LL

/* Everything one determinization allocates, freed at once. */
typedef struct {
    int32_t *range_of_key, *range_lo, *range_hi, *edge_range, *byte_class, *range_class, *edge_target_live;
    uint64_t *covering;
    Py_ssize_t *range_class_start, *reverse_start, *edge_start, *eps_start, *closure_start;
    int32_t *reverse, *edges, *eps, *stack, *visited, *in_set, *closure_length, *counts, *bucket, *bucket_start;
    uint8_t *live, *important, *keep;
    Ints closures, scratch, current, previous, table, accepting;
    SetMap subsets, moves;
    int64_t work; /* set members merged so far (``DET_WORK_LIMIT``) */
} Determinization;

static void determinization_free(Determinization *d) {
    void *pointers[] = {d->range_of_key, d->range_lo, d->range_hi, d->edge_range, d->byte_class, d->range_class,
                        d->edge_target_live, d->covering, d->range_class_start, d->reverse_start, d->edge_start,
                        d->eps_start, d->closure_start, d->reverse, d->edges, d->eps, d->stack, d->visited,
                        d->in_set, d->closure_length, d->counts, d->bucket, d->bucket_start, d->live,
                        d->important, d->keep, d->closures.data, d->scratch.data, d->current.data, d->previous.data,
                        d->table.data, d->accepting.data};
    for (size_t i = 0; i < sizeof pointers / sizeof *pointers; i++) free(pointers[i]);
    setmap_free(&d->subsets);
    setmap_free(&d->moves);
}

/* The important states (with a live byte move, or the accept state) reached from ``state`` by empty moves
 * through live states, computed once per state into ``closures``. */
static int closure_of(Determinization *d, int32_t state, int32_t *stamp) {
    if (d->closure_start[state] >= 0) return 0;
    d->closure_start[state] = d->closures.size;
    d->closure_length[state] = 0;
    if (!d->live[state]) return 0;
    (*stamp)++;
    Py_ssize_t top = 0;
    d->stack[top++] = state;
    d->visited[state] = *stamp;
    while (top > 0) {
        const int32_t at = d->stack[--top];
        if (d->important[at]) {
            if (ints_reserve(&d->closures, 1) < 0) return -1;
            d->closures.data[d->closures.size++] = at;
        }
        for (Py_ssize_t i = d->eps_start[at]; i < d->eps_start[at + 1]; i++) {
            const int32_t target = d->eps[i];
            if (d->visited[target] != *stamp && d->live[target]) {
                d->visited[target] = *stamp;
                d->stack[top++] = target; /* each state at most once: the stack holds n_nfa */
            }
        }
    }
    d->closure_length[state] = (int32_t)(d->closures.size - d->closure_start[state]);
    d->work += d->closure_length[state];
    sort_ints(d->closures.data + d->closure_start[state], d->closure_length[state]);
    return 0;
}

/* The union of the closures of ``targets`` into ``d->scratch``, sorted; -2 past ``DET_WORK_LIMIT``. */
static int closure_of_set(Determinization *d, const int32_t *targets, Py_ssize_t count, int32_t *stamp,
                          int32_t *set_stamp) {
    for (Py_ssize_t i = 0; i < count; i++)
        if (closure_of(d, targets[i], stamp) < 0) return -1;
    d->scratch.size = 0;
    (*set_stamp)++;
    for (Py_ssize_t i = 0; i < count; i++) {
        const int32_t *members = d->closures.data + d->closure_start[targets[i]];
        const int32_t length = d->closure_length[targets[i]];
        d->work += length;
        if (d->work > DET_WORK_LIMIT) return -2;
        if (ints_reserve(&d->scratch, length) < 0) return -1;
        for (int32_t j = 0; j < length; j++) {
            if (d->in_set[members[j]] != *set_stamp) {
                d->in_set[members[j]] = *set_stamp;
                d->scratch.data[d->scratch.size++] = members[j];
            }
        }
    }
    if (count > 1) sort_ints(d->scratch.data, d->scratch.size);
    return 0;
}

static int run_determinization(Determinization *d, Py_ssize_t n_nfa, const int32_t *eps_pairs, Py_ssize_t n_eps,
                               const int32_t *moves, Py_ssize_t n_moves, int32_t start, int32_t accept,
                               Py_ssize_t limit, int32_t *n_classes_out) {
    /* The distinct byte ranges of the moves. */
    d->range_of_key = malloc(65536 * sizeof(int32_t));
    d->range_lo = malloc((size_t)(n_moves + 1) * sizeof(int32_t));
    d->range_hi = malloc((size_t)(n_moves + 1) * sizeof(int32_t));
    d->edge_range = malloc((size_t)(n_moves + 1) * sizeof(int32_t));
    uint64_t *seen_keys = calloc(65536 / 64, sizeof(uint64_t));
    if (!d->range_of_key || !d->range_lo || !d->range_hi || !d->edge_range || !seen_keys) {
        free(seen_keys);
        return DET_NO_MEMORY;
    }
    Py_ssize_t n_ranges = 0;
    for (Py_ssize_t e = 0; e < n_moves; e++) {
        const int32_t lo = moves[4 * e + 1], hi = moves[4 * e + 2], key = lo * 256 + hi;
        if (!(seen_keys[key >> 6] >> (key & 63) & 1)) {
            seen_keys[key >> 6] |= (uint64_t)1 << (key & 63);
            d->range_of_key[key] = (int32_t)n_ranges;
            d->range_lo[n_ranges] = lo;
            d->range_hi[n_ranges] = hi;
            n_ranges++;
        }
        d->edge_range[e] = d->range_of_key[key];
    }
    free(seen_keys);
    /* Byte classes: bytes covered by exactly the same ranges, numbered by first byte. */
    const Py_ssize_t words = (n_ranges + 63) / 64 + 1;
    d->covering = calloc((size_t)(256 * words), sizeof(uint64_t));
    d->byte_class = malloc(256 * sizeof(int32_t));
    if (!d->covering || !d->byte_class) return DET_NO_MEMORY;
    for (Py_ssize_t r = 0; r < n_ranges; r++)
        for (int32_t b = d->range_lo[r]; b <= d->range_hi[r]; b++) d->covering[b * words + (r >> 6)] |= (uint64_t)1 << (r & 63);
    int32_t class_first_byte[256], n_classes = 0;
    for (int b = 0; b < 256; b++) {
        int32_t klass = 0;
        for (; klass < n_classes; klass++)
            if (memcmp(d->covering + b * words, d->covering + class_first_byte[klass] * words, (size_t)words * 8) == 0)
                break;
        if (klass == n_classes) class_first_byte[n_classes++] = b;
        d->byte_class[b] = klass;
    }
    *n_classes_out = n_classes;
    /* The classes of each range, in increasing order. */
    d->range_class_start = malloc((size_t)(n_ranges + 1) * sizeof(Py_ssize_t));
    Ints range_classes = {NULL, 0, 0};
    if (!d->range_class_start) return DET_NO_MEMORY;
    for (Py_ssize_t r = 0; r < n_ranges; r++) {
        uint8_t has[256] = {0};
        d->range_class_start[r] = range_classes.size;
        for (int32_t b = d->range_lo[r]; b <= d->range_hi[r]; b++) has[d->byte_class[b]] = 1;
        if (ints_reserve(&range_classes, n_classes) < 0) return DET_NO_MEMORY;
        for (int32_t c = 0; c < n_classes; c++)
            if (has[c]) range_classes.data[range_classes.size++] = c;
    }
    d->range_class_start[n_ranges] = range_classes.size;
    d->range_class = range_classes.data;
    /* Which NFA states can reach the accept state: a reverse search over every move. */
    const Py_ssize_t n_all = n_eps + n_moves;
    int32_t *pair_source = malloc((size_t)(2 * n_all + 2) * sizeof(int32_t));
    if (!pair_source) return DET_NO_MEMORY;
    for (Py_ssize_t i = 0; i < n_eps; i++) {
        pair_source[2 * i] = eps_pairs[2 * i + 1]; /* reverse: target -> source */
        pair_source[2 * i + 1] = eps_pairs[2 * i];
    }
    for (Py_ssize_t e = 0; e < n_moves; e++) {
        pair_source[2 * (n_eps + e)] = moves[4 * e + 3];
        pair_source[2 * (n_eps + e) + 1] = moves[4 * e];
    }
    int status = compress(n_nfa, n_all, pair_source, 2, pair_source + 1, 2, NULL, &d->reverse_start, &d->reverse);
    free(pair_source);
    if (status < 0) return DET_NO_MEMORY;
    d->live = calloc((size_t)n_nfa, 1);
    d->important = calloc((size_t)n_nfa, 1);
    d->stack = malloc((size_t)n_nfa * sizeof(int32_t));
    d->visited = calloc((size_t)n_nfa, sizeof(int32_t));
    d->in_set = calloc((size_t)n_nfa, sizeof(int32_t));
    d->closure_start = malloc((size_t)n_nfa * sizeof(Py_ssize_t));
    d->closure_length = malloc((size_t)n_nfa * sizeof(int32_t));
    d->keep = malloc((size_t)(n_moves + 1));
    if (!d->live || !d->important || !d->stack || !d->visited || !d->in_set || !d->closure_start ||
        !d->closure_length || !d->keep)
        return DET_NO_MEMORY;
    Py_ssize_t top = 0;
    d->live[accept] = 1;
    d->stack[top++] = accept;
    while (top > 0) {
        const int32_t at = d->stack[--top];
        for (Py_ssize_t i = d->reverse_start[at]; i < d->reverse_start[at + 1]; i++) {
            const int32_t source = d->reverse[i];
            if (!d->live[source]) {
                d->live[source] = 1;
                d->stack[top++] = source;
            }
        }
    }
    /* Per NFA state, its byte moves to live states (as move indices) and its empty moves. */
    for (Py_ssize_t e = 0; e < n_moves; e++) d->keep[e] = d->live[moves[4 * e + 3]];
    if (compress(n_nfa, n_moves, moves, 4, NULL, 0, d->keep, &d->edge_start, &d->edges) < 0 ||
        compress(n_nfa, n_eps, eps_pairs, 2, eps_pairs + 1, 2, NULL, &d->eps_start, &d->eps) < 0)
        return DET_NO_MEMORY;
    for (Py_ssize_t q = 0; q < n_nfa; q++) {
        d->important[q] = d->edge_start[q + 1] > d->edge_start[q] || q == accept;
        d->closure_start[q] = -1;
    }
    /* Subset construction, states numbered as they are found: dead 0, start 1, then by the order in which
     * each state's classes (in increasing order) first reach them. */
    d->counts = malloc((size_t)(n_classes + 1) * sizeof(int32_t));
    d->bucket_start = malloc((size_t)(n_classes + 1) * sizeof(int32_t));
    if (!d->counts || !d->bucket_start || setmap_init(&d->subsets) < 0 || setmap_init(&d->moves) < 0)
        return DET_NO_MEMORY;
    int32_t stamp = 0, set_stamp = 0;
    if (setmap_add(&d->subsets, NULL, 0, hash_members(NULL, 0), 0) < 0) return DET_NO_MEMORY;
    int closed = closure_of_set(d, &start, 1, &stamp, &set_stamp);
    if (closed < 0) return closed == -2 ? DET_TOO_COSTLY : DET_NO_MEMORY;
    if (ints_reserve(&d->table, 2 * n_classes) < 0 || ints_reserve(&d->accepting, 2) < 0) return DET_NO_MEMORY;
    memset(d->table.data, 0, (size_t)(2 * n_classes) * sizeof(int32_t));
    d->table.size = n_classes;
    d->accepting.data[0] = 0;
    d->accepting.data[1] = 0;
    d->accepting.size = 2;
    if (d->scratch.size == 0) { /* nothing matches: a dead start state that accepts nothing */
        d->table.size = 2 * n_classes;
        return DET_OK;
    }
    if (setmap_add(&d->subsets, d->scratch.data, d->scratch.size, hash_members(d->scratch.data, d->scratch.size), 1) < 0)
        return DET_NO_MEMORY;
    d->accepting.data[1] = d->in_set[accept] == set_stamp;
    Py_ssize_t n_states = 2;
    for (Py_ssize_t index = 1; index < n_states; index++) {
        /* A copy of the state's set: adding states may move the stored ones. */
        const Py_ssize_t begin = d->subsets.offsets.data[index], length = d->subsets.offsets.data[index + 1] - begin;
        d->current.size = 0;
        if (ints_reserve(&d->current, length) < 0) return DET_NO_MEMORY;
        memcpy(d->current.data, d->subsets.members.data + begin, (size_t)length * sizeof(int32_t));
        /* The targets of each class, in buckets. */
        memset(d->counts, 0, (size_t)n_classes * sizeof(int32_t));
        Py_ssize_t total = 0;
        for (Py_ssize_t i = 0; i < length; i++) {
            const int32_t q = d->current.data[i];
            for (Py_ssize_t k = d->edge_start[q]; k < d->edge_start[q + 1]; k++) {
                const int32_t r = d->edge_range[d->edges[k]];
                for (Py_ssize_t j = d->range_class_start[r]; j < d->range_class_start[r + 1]; j++) d->counts[d->range_class[j]]++;
                total += d->range_class_start[r + 1] - d->range_class_start[r];
            }
        }
        free(d->bucket);
        d->bucket = malloc((size_t)(total + 1) * sizeof(int32_t));
        if (!d->bucket) return DET_NO_MEMORY;
        d->bucket_start[0] = 0;
        for (int32_t c = 0; c < n_classes; c++) d->bucket_start[c + 1] = d->bucket_start[c] + d->counts[c];
        for (int32_t c = 0; c < n_classes; c++) d->counts[c] = d->bucket_start[c]; /* fill cursors */
        for (Py_ssize_t i = 0; i < length; i++) {
            const int32_t q = d->current.data[i];
            for (Py_ssize_t k = d->edge_start[q]; k < d->edge_start[q + 1]; k++) {
                const int32_t e = d->edges[k], r = d->edge_range[e], target = moves[4 * e + 3];
                for (Py_ssize_t j = d->range_class_start[r]; j < d->range_class_start[r + 1]; j++)
                    d->bucket[d->counts[d->range_class[j]]++] = target;
            }
        }
        if (ints_reserve(&d->table, n_classes) < 0) return DET_NO_MEMORY;
        int32_t *row = d->table.data + index * n_classes;
        d->table.size = (index + 1) * n_classes;
        /* The buckets were filled in the same order of moves, so two classes that the same moves cover have
         * equal buckets before sorting: a class equal to the one before it (a JSON string's character spans
         * dozens of adjacent classes) takes its target without a sort, a hash and a lookup. */
        int32_t previous_class = -1;
        for (int32_t c = 0; c < n_classes; c++) {
            int32_t *targets = d->bucket + d->bucket_start[c];
            Py_ssize_t count = d->bucket_start[c + 1] - d->bucket_start[c];
            if (count == 0) {
                row[c] = 0;
                continue;
            }
            if (previous_class >= 0 && d->bucket_start[previous_class + 1] - d->bucket_start[previous_class] == count &&
                memcmp(d->previous.data, targets, (size_t)count * sizeof(int32_t)) == 0) {
                row[c] = row[previous_class];
                continue;
            }
            d->previous.size = 0;
            if (ints_reserve(&d->previous, count) < 0) return DET_NO_MEMORY;
            memcpy(d->previous.data, targets, (size_t)count * sizeof(int32_t));
            previous_class = c;
            sort_ints(targets, count);
            Py_ssize_t distinct = 1;
            for (Py_ssize_t i = 1; i < count; i++)
                if (targets[i] != targets[distinct - 1]) targets[distinct++] = targets[i];
            const uint64_t h = hash_members(targets, distinct);
            int32_t id = setmap_get(&d->moves, targets, distinct, h);
            if (id < 0) {
                closed = closure_of_set(d, targets, distinct, &stamp, &set_stamp);
                if (closed < 0) return closed == -2 ? DET_TOO_COSTLY : DET_NO_MEMORY;
                const uint64_t closed_hash = hash_members(d->scratch.data, d->scratch.size);
                id = setmap_get(&d->subsets, d->scratch.data, d->scratch.size, closed_hash);
                if (id < 0) {
                    if (n_states > limit) return DET_TOO_LARGE;
                    id = (int32_t)n_states++;
                    if (setmap_add(&d->subsets, d->scratch.data, d->scratch.size, closed_hash, id) < 0 ||
                        ints_reserve(&d->accepting, 1) < 0)
                        return DET_NO_MEMORY;
                    d->accepting.data[d->accepting.size++] = d->in_set[accept] == set_stamp;
                }
                if (setmap_add(&d->moves, targets, distinct, h, id) < 0) return DET_NO_MEMORY;
            }
            row[c] = id;
        }
    }
    return DET_OK;
}

static PyObject *determinize(PyObject *self, PyObject *args) {
    PyObject *eps_object, *moves_object;
    Py_ssize_t n_nfa, start, accept, limit;
    if (!PyArg_ParseTuple(args, "nOOnnn:determinize", &n_nfa, &eps_object, &moves_object, &start, &accept, &limit))
        return NULL;
    Py_buffer eps_view, moves_view;
    if (PyObject_GetBuffer(eps_object, &eps_view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    if (PyObject_GetBuffer(moves_object, &moves_view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&eps_view);
        return NULL;
    }
    PyObject *result = NULL;
    Determinization d;
    memset(&d, 0, sizeof d);
    const int32_t *eps = eps_view.buf, *moves = moves_view.buf;
    const Py_ssize_t n_eps = eps_view.len / 8, n_moves = moves_view.len / 16;
    if (eps_view.itemsize != 4 || moves_view.itemsize != 4) {
        PyErr_SetString(PyExc_TypeError, "determinize: the moves must have int32 items");
        goto done;
    }
    if (eps_view.len % 8 || moves_view.len % 16 || n_nfa <= 0 || n_nfa > INT32_MAX / 2 || start < 0 ||
        start >= n_nfa || accept < 0 || accept >= n_nfa || limit < 1 || limit > INT32_MAX / 2) {
        PyErr_SetString(PyExc_ValueError, "determinize: the NFA's sizes, start or accept state do not fit together");
        goto done;
    }
    for (Py_ssize_t i = 0; i < 2 * n_eps; i++) {
        if (eps[i] < 0 || eps[i] >= n_nfa) {
            PyErr_Format(PyExc_ValueError, "determinize: empty move to or from %d, not a state", eps[i]);
            goto done;
        }
    }
    for (Py_ssize_t e = 0; e < n_moves; e++) {
        const int32_t *move = moves + 4 * e;
        if (move[0] < 0 || move[0] >= n_nfa || move[3] < 0 || move[3] >= n_nfa || move[1] < 0 || move[1] > move[2] ||
            move[2] > 255) {
            PyErr_Format(PyExc_ValueError, "determinize: byte move %zd (%d, %d, %d, %d) is malformed", e, move[0],
                         move[1], move[2], move[3]);
            goto done;
        }
    }
    int status;
    int32_t n_classes = 0;
    Py_BEGIN_ALLOW_THREADS
    status = run_determinization(&d, n_nfa, eps, n_eps, moves, n_moves, (int32_t)start, (int32_t)accept, limit,
                                 &n_classes);
    Py_END_ALLOW_THREADS
    if (status == DET_NO_MEMORY) {
        PyErr_NoMemory();
        goto done;
    }
    if (status == DET_TOO_LARGE || status == DET_TOO_COSTLY) {
        result = status == DET_TOO_LARGE ? Py_None : Py_False;
        Py_INCREF(result);
        goto done;
    }
    PyObject *classes = PyBytes_FromStringAndSize((const char *)d.byte_class, 256 * sizeof(int32_t));
    PyObject *table = PyByteArray_FromStringAndSize((const char *)d.table.data, d.table.size * (Py_ssize_t)sizeof(int32_t));
    PyObject *accepting = PyByteArray_FromStringAndSize(NULL, d.accepting.size);
    if (accepting)
        for (Py_ssize_t i = 0; i < d.accepting.size; i++) PyByteArray_AS_STRING(accepting)[i] = (char)d.accepting.data[i];
    if (classes && table && accepting) result = Py_BuildValue("(NiNN)", classes, (int)n_classes, table, accepting);
    else {
        Py_XDECREF(classes);
        Py_XDECREF(table);
        Py_XDECREF(accepting);
    }
done:
    determinization_free(&d);
    PyBuffer_Release(&eps_view);
    PyBuffer_Release(&moves_view);
    return result;
}

/* ---- Keys of packed masks (index.py's ``Index._shared``: equal masks are stored once).
 *
 * Why native code: a walk's batch of 32 masks (16 KB each on a 128k vocabulary) was keyed by a numpy
 * fingerprint, then each row looked up and compared in Python; a batch's rows repeat one another (keys,
 * digits: 2,030 of wide-30's 2,820 walked masks equal an earlier one). One pass here keys each row and
 * finds, within the batch, the first row equal to it byte for byte, so Python looks up distinct rows only. */

static PyObject *mask_keys(PyObject *self, PyObject *args) {
    PyObject *object;
    Py_ssize_t words;
    if (!PyArg_ParseTuple(args, "On:mask_keys", &object, &words)) return NULL;
    Py_buffer view;
    static const Py_ssize_t size[1] = {4};
    static const char *name[1] = {"masks"};
    if (get_buffers("mask_keys", &object, &view, 1, size, name, 0) < 0) return NULL;
    if (words <= 0 || view.len % (4 * words) != 0) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError, "mask_keys: masks must be rows of %zd int32 words", words);
        return NULL;
    }
    const Py_ssize_t rows = view.len / (4 * words);
    Py_ssize_t slots = 16;
    while (slots < 2 * rows) slots *= 2;
    uint32_t *keys = malloc((size_t)(rows ? rows : 1) * sizeof(uint32_t));
    int64_t *first = malloc((size_t)(rows ? rows : 1) * sizeof(int64_t));
    int64_t *slot = malloc((size_t)slots * sizeof(int64_t));
    PyObject *key_list = NULL, *first_list = NULL, *result = NULL;
    if (!keys || !first || !slot) {
        PyErr_NoMemory();
        goto done;
    }
    const uint32_t *masks = view.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t s = 0; s < slots; s++) slot[s] = -1;
    for (Py_ssize_t r = 0; r < rows; r++) {
        const uint32_t *row = masks + r * words;
        /* Each word times an odd weight of its position, summed in 8 lanes (vectorized), then mixed: two
         * rows differing in one word always differ in key; other collisions only cost a comparison. */
        uint32_t lanes[8] = {0}, weight[8];
        for (int lane = 0; lane < 8; lane++) weight[lane] = 2 * (uint32_t)lane + 1;
        Py_ssize_t i = 0;
        for (; i + 8 <= words; i += 8) {
            for (int lane = 0; lane < 8; lane++) {
                lanes[lane] += row[i + lane] * weight[lane];
                weight[lane] += 16;
            }
        }
        for (int lane = 0; i < words; i++, lane++) lanes[lane] += row[i] * weight[lane];
        uint64_t h = 0;
        for (int lane = 0; lane < 8; lane++) h = mix64(h ^ ((uint64_t)lanes[lane] << 3 | (uint64_t)lane));
        keys[r] = (uint32_t)(h >> 32);
        first[r] = r;
        for (Py_ssize_t s = keys[r] & (slots - 1);; s = (s + 1) & (slots - 1)) {
            if (slot[s] < 0) {
                slot[s] = r;
                break;
            }
            const Py_ssize_t other = slot[s];
            if (keys[other] == keys[r] && memcmp(masks + other * words, row, (size_t)words * 4) == 0) {
                first[r] = other;
                break;
            }
        }
    }
    Py_END_ALLOW_THREADS
    key_list = PyList_New(rows);
    first_list = PyList_New(rows);
    if (!key_list || !first_list) goto done;
    for (Py_ssize_t r = 0; r < rows; r++) {
        PyObject *key = PyLong_FromUnsignedLong(keys[r]), *index = PyLong_FromSsize_t((Py_ssize_t)first[r]);
        if (!key || !index) {
            Py_XDECREF(key);
            Py_XDECREF(index);
            goto done;
        }
        PyList_SET_ITEM(key_list, r, key);
        PyList_SET_ITEM(first_list, r, index);
    }
    result = PyTuple_Pack(2, key_list, first_list);
done:
    Py_XDECREF(key_list);
    Py_XDECREF(first_list);
    free(keys);
    free(first);
    free(slot);
    PyBuffer_Release(&view);
    return result;
}

/* ---- Each state's distinct live successors (lookahead.py's ``lookahead_tables``).
 *
 * Why native code: numpy found them by sorting every row of the class table and comparing neighbours,
 * 0.4 ms on nested-8 (1,815 states by 71 classes) of a compile whose first mask waits for them; one pass
 * with a stamp per state finds them in a few tens of microseconds. */

static PyObject *distinct_successors(PyObject *self, PyObject *args) {
    PyObject *object;
    Py_ssize_t n_classes;
    if (!PyArg_ParseTuple(args, "On:distinct_successors", &object, &n_classes)) return NULL;
    Py_buffer view;
    static const Py_ssize_t size[1] = {4};
    static const char *name[1] = {"table"};
    if (get_buffers("distinct_successors", &object, &view, 1, size, name, 0) < 0) return NULL;
    const Py_ssize_t n_states = n_classes > 0 ? view.len / (4 * n_classes) : 0;
    if (n_classes <= 0 || n_states == 0 || view.len % (4 * n_classes) != 0) {
        PyBuffer_Release(&view);
        PyErr_Format(PyExc_ValueError, "distinct_successors: the table must be non-empty rows of %zd classes",
                     n_classes);
        return NULL;
    }
    const int32_t *table = view.buf;
    int32_t *successors = malloc((size_t)(n_states * n_classes) * sizeof(int32_t));
    int64_t *starts = malloc((size_t)(n_states + 1) * sizeof(int64_t));
    int64_t *stamp = malloc((size_t)n_states * sizeof(int64_t));
    PyObject *result = NULL;
    int bad = 0;
    if (!successors || !starts || !stamp) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t count = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t state = 0; state < n_states; state++) stamp[state] = -1;
    for (Py_ssize_t state = 0; state < n_states && !bad; state++) {
        starts[state] = count;
        const int32_t *row = table + state * n_classes;
        for (Py_ssize_t klass = 0; klass < n_classes; klass++) {
            const int32_t target = row[klass];
            if (target < 0 || target >= n_states) {
                bad = 1;
                break;
            }
            if (target == 0 || stamp[target] == state) continue;
            stamp[target] = state;
            /* Kept in increasing order (an insertion: a row has a few dozen at most), as numpy's sort gave. */
            Py_ssize_t at = count++;
            while (at > starts[state] && successors[at - 1] > target) {
                successors[at] = successors[at - 1];
                at--;
            }
            successors[at] = target;
        }
    }
    starts[n_states] = count;
    Py_END_ALLOW_THREADS
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "distinct_successors: the table leads outside the states");
        goto done;
    }
    result = Py_BuildValue("(y#y#)", (const char *)successors, (Py_ssize_t)(count * 4), (const char *)starts,
                           (Py_ssize_t)((n_states + 1) * 8));
done:
    free(successors);
    free(starts);
    free(stamp);
    PyBuffer_Release(&view);
    return result;
}

/* ---- Per-state sums over live byte classes (index.py's live byte counts, lookahead.py's estimates).
 *
 * Why native code: numpy made these as float32 products with the (states, classes) liveness matrix, which
 * numpy hands to BLAS; OpenBLAS runs a product of that size on all its threads, and when another process
 * holds a core they wait on each other: the third-level estimate of a 59-state schema took 8.5 ms instead
 * of 0.2 while another job ran on this 2-core machine, a 30-field object's compile 30 ms instead of 9. One
 * pass over the table here, on the calling thread, costs a few microseconds for the sums and a tenth of
 * the single-threaded product for the estimate (the sum over a state's few dead classes where most live). */

/* The table's buffer checked: int32 rows of ``n_classes`` targets, each a state of the table. Returns the
 * state count, or -1 with a Python error set (and the buffer released). */
static Py_ssize_t class_table(const char *kernel, PyObject *object, Py_ssize_t n_classes, Py_buffer *view) {
    static const Py_ssize_t size[1] = {4};
    static const char *name[1] = {"table"};
    if (get_buffers(kernel, &object, view, 1, size, name, 0) < 0) return -1;
    const Py_ssize_t n_states = n_classes > 0 ? view->len / (4 * n_classes) : 0;
    if (n_classes <= 0 || n_states == 0 || view->len % (4 * n_classes) != 0) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError, "%s: the table must be non-empty rows of %zd classes", kernel, n_classes);
        return -1;
    }
    const int32_t *table = view->buf;
    for (Py_ssize_t i = 0; i < n_states * n_classes; i++) {
        if (table[i] < 0 || table[i] >= n_states) {
            PyBuffer_Release(view);
            PyErr_Format(PyExc_ValueError, "%s: the table leads outside the states", kernel);
            return -1;
        }
    }
    return n_states;
}

static PyObject *live_weight_sums(PyObject *self, PyObject *args) {
    PyObject *objects[2];
    Py_ssize_t n_classes;
    if (!PyArg_ParseTuple(args, "OnO:live_weight_sums", &objects[0], &n_classes, &objects[1])) return NULL;
    Py_buffer table_view, weight_view;
    const Py_ssize_t n_states = class_table("live_weight_sums", objects[0], n_classes, &table_view);
    if (n_states < 0) return NULL;
    static const Py_ssize_t size[1] = {8};
    static const char *name[1] = {"weights"};
    if (get_buffers("live_weight_sums", &objects[1], &weight_view, 1, size, name, 0) < 0) {
        PyBuffer_Release(&table_view);
        return NULL;
    }
    PyObject *result = NULL;
    if (weight_view.len != n_classes * 8) {
        PyErr_Format(PyExc_ValueError, "live_weight_sums: weights must hold %zd float64, one per class", n_classes);
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, n_states * 8);
    if (!result) goto done;
    const int32_t *table = table_view.buf;
    const double *weights = weight_view.buf;
    double *sums = (double *)PyBytes_AS_STRING(result);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t state = 0; state < n_states; state++) {
        const int32_t *row = table + state * n_classes;
        double sum = 0;
        for (Py_ssize_t klass = 0; klass < n_classes; klass++)
            if (row[klass] != 0) sum += weights[klass];
        sums[state] = sum;
    }
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&table_view);
    PyBuffer_Release(&weight_view);
    return result;
}

static PyObject *third_level_estimate(PyObject *self, PyObject *args) {
    PyObject *objects[4];
    Py_ssize_t n_classes;
    if (!PyArg_ParseTuple(args, "OnOOO:third_level_estimate", &objects[0], &n_classes, &objects[1], &objects[2],
                          &objects[3]))
        return NULL;
    Py_buffer table_view, views[3];
    const Py_ssize_t n_states = class_table("third_level_estimate", objects[0], n_classes, &table_view);
    if (n_states < 0) return NULL;
    static const Py_ssize_t sizes[3] = {4, 1, 4};
    static const char *names[3] = {"byte_classes", "live_bytes", "counts"};
    if (get_buffers("third_level_estimate", objects + 1, views, 3, sizes, names, 0) < 0) {
        PyBuffer_Release(&table_view);
        return NULL;
    }
    PyObject *result = NULL;
    int64_t *by_second = NULL, *row_total = NULL, *after = NULL;
    int32_t *pattern_of = NULL, *slots = NULL;
    uint64_t *live_words = NULL;
    const int32_t *byte_classes = views[0].buf;
    if (views[0].len != 256 * 4 || views[1].len != 256 || views[2].len != 256 * 256 * 4) {
        PyErr_SetString(PyExc_ValueError,
                        "third_level_estimate: byte_classes, live_bytes and counts must cover 256, 256 and 256x256 bytes");
        goto done;
    }
    for (int byte = 0; byte < 256; byte++) {
        if (byte_classes[byte] < 0 || byte_classes[byte] >= n_classes) {
            PyErr_Format(PyExc_ValueError, "third_level_estimate: byte %d's class is not one of %zd", byte, n_classes);
            goto done;
        }
    }
    by_second = calloc((size_t)(n_classes * n_classes), sizeof(int64_t));
    row_total = calloc((size_t)n_classes, sizeof(int64_t));
    const Py_ssize_t n_words = (n_classes + 63) / 64;
    Py_ssize_t n_slots = 64;
    while (n_slots < 2 * n_states) n_slots *= 2;
    pattern_of = malloc((size_t)n_states * sizeof(int32_t));
    live_words = calloc((size_t)(n_states * n_words), sizeof(uint64_t));
    slots = malloc((size_t)n_slots * sizeof(int32_t));
    result = PyBytes_FromStringAndSize(NULL, n_states * 8);
    if (!by_second || !row_total || !pattern_of || !live_words || !slots || !result) {
        Py_CLEAR(result);
        PyErr_NoMemory();
        goto done;
    }
    const int32_t *table = table_view.buf;
    const uint8_t *live_bytes = views[1].buf;
    const float *counts = views[2].buf;
    int64_t *estimate = (int64_t *)PyBytes_AS_STRING(result);
    int no_memory = 0;
    Py_BEGIN_ALLOW_THREADS
    /* by_second[c2][c1]: the three-byte prefixes under a first byte of class c1 and a second of class c2,
     * both bytes some state lives on (counts are exact integers in float32); row_total[c1]: over every c2. */
    for (int first = 0; first < 256; first++) {
        if (!live_bytes[first]) continue;
        const Py_ssize_t c1 = byte_classes[first];
        for (int second = 0; second < 256; second++) {
            if (!live_bytes[second]) continue;
            const int64_t count = (int64_t)counts[first * 256 + second];
            by_second[byte_classes[second] * n_classes + c1] += count;
            row_total[c1] += count;
        }
    }
    /* A state reached contributes by its live classes only: states of one liveness pattern share
     * after[p][c1], the prefixes under c1 whose second byte lives in pattern p (a few dozen patterns where
     * a schema has thousands of states). */
    for (Py_ssize_t i = 0; i < n_slots; i++) slots[i] = -1;
    Py_ssize_t n_patterns = 0;
    for (Py_ssize_t state = 0; state < n_states; state++) {
        const int32_t *row = table + state * n_classes;
        uint64_t *words = live_words + state * n_words;
        for (Py_ssize_t klass = 0; klass < n_classes; klass++)
            if (row[klass] != 0) words[klass >> 6] |= (uint64_t)1 << (klass & 63);
        uint64_t h = 0;
        for (Py_ssize_t w = 0; w < n_words; w++) h = mix64(h ^ words[w]);
        Py_ssize_t slot = (Py_ssize_t)(h & (uint64_t)(n_slots - 1));
        for (;;) {
            const int32_t known = slots[slot];
            if (known < 0) {
                slots[slot] = (int32_t)state;
                pattern_of[state] = (int32_t)n_patterns++;
                break;
            }
            if (memcmp(live_words + known * n_words, words, (size_t)n_words * 8) == 0) {
                pattern_of[state] = pattern_of[known];
                break;
            }
            slot = (slot + 1) & (n_slots - 1);
        }
    }
    after = malloc((size_t)(n_patterns * n_classes) * sizeof(int64_t));
    if (!after) no_memory = 1;
    for (Py_ssize_t i = 0; i < n_slots && !no_memory; i++) {
        const int32_t state = slots[i];
        if (state < 0) continue;
        const int32_t *row = table + (Py_ssize_t)state * n_classes;
        int64_t *into = after + (Py_ssize_t)pattern_of[state] * n_classes;
        Py_ssize_t lives = 0;
        for (Py_ssize_t klass = 0; klass < n_classes; klass++) lives += row[klass] != 0;
        /* Summed over its live classes, or taken from the totals over its dead ones where most live. */
        const int by_dead = 2 * lives > n_classes;
        if (by_dead) memcpy(into, row_total, (size_t)n_classes * sizeof(int64_t));
        else memset(into, 0, (size_t)n_classes * sizeof(int64_t));
        for (Py_ssize_t c2 = 0; c2 < n_classes; c2++) {
            if ((row[c2] != 0) == by_dead) continue;
            const int64_t *counts_of = by_second + c2 * n_classes;
            if (by_dead)
                for (Py_ssize_t c1 = 0; c1 < n_classes; c1++) into[c1] -= counts_of[c1];
            else
                for (Py_ssize_t c1 = 0; c1 < n_classes; c1++) into[c1] += counts_of[c1];
        }
    }
    /* estimate[s]: over the live classes c1 of s, leading to t, after[pattern of t][c1]. */
    for (Py_ssize_t state = 0; state < n_states && !no_memory; state++) {
        const int32_t *row = table + state * n_classes;
        int64_t sum = 0;
        for (Py_ssize_t c1 = 0; c1 < n_classes; c1++)
            if (row[c1] != 0) sum += after[(Py_ssize_t)pattern_of[row[c1]] * n_classes + c1];
        estimate[state] = sum;
    }
    Py_END_ALLOW_THREADS
    if (no_memory) {
        Py_CLEAR(result);
        PyErr_NoMemory();
    }
done:
    free(by_second);
    free(row_total);
    free(after);
    free(pattern_of);
    free(live_words);
    free(slots);
    PyBuffer_Release(&table_view);
    for (int i = 0; i < 3; i++) PyBuffer_Release(&views[i]);
    return result;
}

/* ---- Each state's majority move (loop_walk.py's ``LoopWalk._majority_move``).
 *
 * Why native code: a loop walk follows a chain of majority moves (the target most bytes of a state lead
 * to), up to a longest token's length, and the index's construction asks for them state by state: a
 * weighted count and a bit set per state cost 5 to 6 us in numpy, 2 ms of nested-8's compile (339 states).
 * One pass here makes every state's in a tenth of that. */

static PyObject *majority_moves(PyObject *self, PyObject *args) {
    PyObject *objects[2];
    Py_ssize_t n_classes;
    if (!PyArg_ParseTuple(args, "OnO:majority_moves", &objects[0], &n_classes, &objects[1])) return NULL;
    Py_buffer table_view, size_view;
    const Py_ssize_t n_states = class_table("majority_moves", objects[0], n_classes, &table_view);
    if (n_states < 0) return NULL;
    static const Py_ssize_t size[1] = {8};
    static const char *name[1] = {"class_sizes"};
    if (get_buffers("majority_moves", &objects[1], &size_view, 1, size, name, 0) < 0) {
        PyBuffer_Release(&table_view);
        return NULL;
    }
    PyObject *targets = NULL, *words = NULL, *result = NULL;
    int64_t *weight = NULL, *stamp = NULL;
    if (size_view.len != n_classes * 8) {
        PyErr_Format(PyExc_ValueError, "majority_moves: class_sizes must hold %zd int64, one per class", n_classes);
        goto done;
    }
    const Py_ssize_t n_words = (n_classes + 63) / 64;
    targets = PyBytes_FromStringAndSize(NULL, n_states * 4);
    words = PyBytes_FromStringAndSize(NULL, n_states * n_words * 8);
    weight = malloc((size_t)n_states * sizeof(int64_t));
    stamp = malloc((size_t)n_states * sizeof(int64_t));
    if (!targets || !words || !weight || !stamp) {
        if (targets && words) PyErr_NoMemory();
        goto done;
    }
    const int32_t *table = table_view.buf;
    const int64_t *sizes = size_view.buf;
    int32_t *target_of = (int32_t *)PyBytes_AS_STRING(targets);
    uint64_t *bits = (uint64_t *)PyBytes_AS_STRING(words);
    Py_BEGIN_ALLOW_THREADS
    memset(bits, 0, (size_t)(n_states * n_words) * 8);
    for (Py_ssize_t state = 0; state < n_states; state++) stamp[state] = -1;
    for (Py_ssize_t state = 0; state < n_states; state++) {
        const int32_t *row = table + state * n_classes;
        /* The heaviest live target, the lowest id among equals (as numpy's weighted count's argmax). */
        int32_t best = 0;
        int64_t best_weight = 0;
        for (Py_ssize_t klass = 0; klass < n_classes; klass++) {
            const int32_t target = row[klass];
            if (target == 0) continue;
            if (stamp[target] != state) {
                stamp[target] = state;
                weight[target] = 0;
            }
            weight[target] += sizes[klass];
        }
        for (Py_ssize_t klass = 0; klass < n_classes; klass++) {
            const int32_t target = row[klass];
            if (target == 0) continue;
            if (weight[target] > best_weight || (weight[target] == best_weight && target < best)) {
                best = target;
                best_weight = weight[target];
            }
        }
        if (best_weight <= 0) best = 0;
        target_of[state] = best;
        if (best == 0) continue;
        uint64_t *into = bits + state * n_words;
        for (Py_ssize_t klass = 0; klass < n_classes; klass++)
            if (row[klass] == best) into[klass >> 6] |= (uint64_t)1 << (klass & 63);
    }
    Py_END_ALLOW_THREADS
    result = PyTuple_Pack(2, targets, words);
done:
    Py_XDECREF(targets);
    Py_XDECREF(words);
    free(weight);
    free(stamp);
    PyBuffer_Release(&table_view);
    PyBuffer_Release(&size_view);
    return result;
}

/* ---- Where each state's multi-byte UTF-8 characters lead (loop_walk.py's ``LoopWalk._character_targets``).
 *
 * Why native code: a loop walk decides a token of whole characters by its character count where every
 * multi-byte character makes the same move; the index finds, for every state whose lead bytes all live,
 * the one state all of them lead to. numpy walked the eight character kinds a byte position at a time for
 * all states at once, a dozen calls a position and a per-DFA table of each position's classes: 0.3 to
 * 0.7 ms of a JSON schema's compile. Here each state costs the few classes each position spans. */

/* The byte ranges of every valid multi-byte UTF-8 character (RFC 3629), per kind: (length, lo/hi per byte). */
static const uint8_t utf8_kinds[8][9] = {
    {2, 0xC2, 0xDF, 0x80, 0xBF},
    {3, 0xE0, 0xE0, 0xA0, 0xBF, 0x80, 0xBF},
    {3, 0xE1, 0xEC, 0x80, 0xBF, 0x80, 0xBF},
    {3, 0xED, 0xED, 0x80, 0x9F, 0x80, 0xBF},
    {3, 0xEE, 0xEF, 0x80, 0xBF, 0x80, 0xBF},
    {4, 0xF0, 0xF0, 0x90, 0xBF, 0x80, 0xBF, 0x80, 0xBF},
    {4, 0xF1, 0xF3, 0x80, 0xBF, 0x80, 0xBF, 0x80, 0xBF},
    {4, 0xF4, 0xF4, 0x80, 0x8F, 0x80, 0xBF, 0x80, 0xBF},
};

static PyObject *character_targets(PyObject *self, PyObject *args) {
    PyObject *objects[3];
    Py_ssize_t n_classes;
    if (!PyArg_ParseTuple(args, "OnOO:character_targets", &objects[0], &n_classes, &objects[1], &objects[2]))
        return NULL;
    Py_buffer table_view, views[2];
    const Py_ssize_t n_states = class_table("character_targets", objects[0], n_classes, &table_view);
    if (n_states < 0) return NULL;
    static const Py_ssize_t sizes[2] = {4, 8};
    static const char *names[2] = {"byte_classes", "states"};
    if (get_buffers("character_targets", objects + 1, views, 2, sizes, names, 0) < 0) {
        PyBuffer_Release(&table_view);
        return NULL;
    }
    PyObject *result = NULL;
    const int32_t *byte_classes = views[0].buf;
    const int64_t *states = views[1].buf;
    const Py_ssize_t n_asked = views[1].len / 8;
    const char *problem = NULL;
    if (views[0].len != 256 * 4) problem = "byte_classes must hold 256 classes";
    for (int byte = 0; !problem && byte < 256; byte++)
        if (byte_classes[byte] < 0 || byte_classes[byte] >= n_classes) problem = "a byte's class is not a class";
    for (Py_ssize_t i = 0; !problem && i < n_asked; i++)
        if (states[i] < 0 || states[i] >= n_states) problem = "a state asked is not a state";
    if (problem) {
        PyErr_Format(PyExc_ValueError, "character_targets: %s", problem);
        goto done;
    }
    result = PyBytes_FromStringAndSize(NULL, n_asked * 8);
    if (!result) goto done;
    int64_t *target = (int64_t *)PyBytes_AS_STRING(result);
    const int32_t *table = table_view.buf;
    Py_BEGIN_ALLOW_THREADS
    /* Per kind and byte position: the distinct classes of its byte range, its first byte's class first. */
    int32_t span_classes[8][4][64];
    int span_count[8][4];
    for (int kind = 0; kind < 8; kind++) {
        for (int position = 0; position < utf8_kinds[kind][0]; position++) {
            int lo = utf8_kinds[kind][1 + 2 * position], hi = utf8_kinds[kind][2 + 2 * position], count = 0;
            for (int byte = lo; byte <= hi; byte++) {
                int32_t klass = byte_classes[byte];
                int seen = 0;
                for (int i = 0; i < count && !seen; i++) seen = span_classes[kind][position][i] == klass;
                if (!seen) span_classes[kind][position][count++] = klass;
            }
            span_count[kind][position] = count;
        }
    }
    for (Py_ssize_t i = 0; i < n_asked; i++) {
        int64_t common = -1;
        for (int kind = 0; kind < 8 && common != 0; kind++) {
            int32_t reached = (int32_t)states[i];
            for (int position = 0; position < utf8_kinds[kind][0] && reached != 0; position++) {
                const int32_t *row = table + (Py_ssize_t)reached * n_classes;
                const int32_t *classes = span_classes[kind][position];
                int32_t first = row[classes[0]];
                for (int c = 1; c < span_count[kind][position]; c++)
                    if (row[classes[c]] != first) {
                        first = 0;
                        break;
                    }
                reached = first;
            }
            if (common < 0) common = reached;
            else if (common != reached) common = 0;
        }
        target[i] = common < 0 ? 0 : common;
    }
    Py_END_ALLOW_THREADS
done:
    PyBuffer_Release(&table_view);
    for (int i = 0; i < 2; i++) PyBuffer_Release(&views[i]);
    return result;
}

/* ---- The next state after a token (index.py's ``Index.next_state``, on every decode step).
 *
 * Why native code: a decode step is a mask copy and a move, about 1.5 us in all. In Python a move paid a
 * tuple key, a cache lookup, the EOS, range and special-token tests and, on a first move, a walk of the
 * token's bytes at 0.1 us a byte. A kernel taking its arrays through the buffer protocol pays more per
 * call than that; this object holds the views, and ``Index.next_state`` is its method: one call with two
 * integers, no Python frame, and no cache needed (a token's walk here costs a few nanoseconds a byte). */

enum { TM_TRANSITIONS, TM_DATA, TM_OFFSETS, TM_ACCEPTING, TM_EOS, TM_N };

typedef struct {
    PyObject_HEAD
    Py_buffer views[TM_N];
    int held;
    Py_ssize_t n_states, n_tokens, n_data, n_eos;
} TokenMover;

static void token_mover_release(TokenMover *self) {
    for (int i = 0; i < self->held; i++) PyBuffer_Release(&self->views[i]);
    self->held = 0;
}

static void token_mover_dealloc(TokenMover *self) {
    token_mover_release(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int token_mover_init(TokenMover *self, PyObject *args, PyObject *kwargs) {
    static const Py_ssize_t sizes[TM_N] = {4, 1, 8, 1, 8};
    static const char *names[TM_N] = {"transitions", "data", "offsets", "accepting", "eos_ids"};
    PyObject *objects[TM_N];
    if (kwargs && PyDict_Size(kwargs)) {
        PyErr_SetString(PyExc_TypeError, "TokenMover takes no keyword arguments");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "OOOOO:TokenMover", &objects[0], &objects[1], &objects[2], &objects[3],
                          &objects[4]))
        return -1;
    token_mover_release(self);
    if (get_buffers("TokenMover", objects, self->views, TM_N, sizes, names, 0) < 0) return -1;
    self->held = TM_N;
    self->n_states = self->views[TM_TRANSITIONS].len / (4 * 256);
    self->n_data = self->views[TM_DATA].len;
    self->n_tokens = self->views[TM_OFFSETS].len / 8;
    self->n_eos = self->views[TM_EOS].len / 8;
    const char *wrong = NULL;
    if (self->views[TM_TRANSITIONS].len % (4 * 256) != 0 || self->n_states == 0)
        wrong = "TokenMover: transitions must be (states, 256)";
    else if (self->views[TM_ACCEPTING].len != self->n_states)
        wrong = "TokenMover: accepting must have one flag per state";
    if (wrong) {
        token_mover_release(self);
        PyErr_SetString(PyExc_ValueError, wrong);
        return -1;
    }
    return 0; /* offsets are checked per move: a pass over a 128k vocabulary would cost a small compile 0.1 ms */
}

/* FINISHED in index.py: the pseudo-state after EOS. */
#define FINISHED_STATE (-1)

static PyObject *token_mover_next_state(TokenMover *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "next_state(state, token) takes two integers");
        return NULL;
    }
    if (self->held != TM_N) {
        PyErr_SetString(PyExc_ValueError, "TokenMover was not initialized");
        return NULL;
    }
    /* Integers and numpy integers alike (through __index__); a token id past the machine's range is
     * clamped, so out of range like any other. */
    const Py_ssize_t state = PyNumber_AsSsize_t(args[0], PyExc_OverflowError);
    if (state == -1 && PyErr_Occurred()) return NULL;
    const Py_ssize_t token = PyNumber_AsSsize_t(args[1], NULL);
    if (token == -1 && PyErr_Occurred()) return NULL;
    if (state != FINISHED_STATE && (state < 0 || state >= self->n_states)) {
        PyErr_Format(PyExc_ValueError, "next_state: state %zd is out of range", state);
        return NULL;
    }
    const uint8_t *accepting = self->views[TM_ACCEPTING].buf;
    const int64_t *eos = self->views[TM_EOS].buf;
    for (Py_ssize_t i = 0; i < self->n_eos; i++) {
        if (eos[i] == token) return PyLong_FromLong(state == FINISHED_STATE || accepting[state] ? FINISHED_STATE : 0);
    }
    if (state == FINISHED_STATE || token < 0 || token >= self->n_tokens) return PyLong_FromLong(0);
    const int32_t *transitions = self->views[TM_TRANSITIONS].buf;
    const uint8_t *data = self->views[TM_DATA].buf;
    const int64_t *offsets = self->views[TM_OFFSETS].buf;
    const int64_t begin = offsets[token], end = token + 1 < self->n_tokens ? offsets[token + 1] : self->n_data;
    if (begin < 0 || begin > end || end > self->n_data) {
        PyErr_Format(PyExc_ValueError, "next_state: token %zd's bytes lie outside the data", token);
        return NULL;
    }
    if (begin == end) return PyLong_FromLong(0); /* a special token: never content */
    int64_t reached = walk_bytes(transitions, self->n_states, data + begin, data + end, state);
    if (reached < 0) {
        PyErr_SetString(PyExc_ValueError, "next_state: the table leads outside the states");
        return NULL;
    }
    return PyLong_FromLongLong(reached);
}

static PyMethodDef token_mover_methods[] = {
    {"next_state", (PyCFunction)(void (*)(void))token_mover_next_state, METH_FASTCALL,
     "next_state(state, token) -> the state after token: where its bytes lead from state (0, the dead state,\n"
     "once one dies, and for a token without bytes or out of range); after an EOS id, -1 (finished) from an\n"
     "accepting state or -1, else 0."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TokenMoverType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "outlines_core._native.TokenMover",
    .tp_basicsize = sizeof(TokenMover),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "TokenMover(transitions, data, offsets, accepting, eos_ids): a token's move through a DFA.\n\n"
              "transitions: the (states, 256) int32 byte table, C-contiguous; data: uint8, token t's bytes\n"
              "data[offsets[t]:offsets[t + 1]] (the last token's to the end; none for a special token);\n"
              "offsets: int64; accepting: one 1-byte flag per state; eos_ids: int64. The arrays are held\n"
              "(read-only) for the object's life.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)token_mover_init,
    .tp_dealloc = (destructor)token_mover_dealloc,
    .tp_methods = token_mover_methods,
};

/* ---- Regex text -> byte NFA: in _regex_nfa.c. */
PyObject *regex_nfa(PyObject *self, PyObject *args);

static PyMethodDef methods[] = {
    {"trie_masks", trie_masks, METH_VARARGS,
     "trie_masks(child_start, child_count, node_byte, token_start, token_ids, root_child, transitions, origins,\n"
     "           out, depths, max_nodes) -> nodes visited, or -1 past max_nodes\n\n"
     "Set in each row of ``out`` (zeroed int32 words, one row per origin) the bits of the tokens whose bytes\n"
     "walk from that origin state without reaching the dead state 0, and in ``depths`` the length of the\n"
     "longest live token prefix. Arrays: int64 except node_byte, token_ids, transitions and out (int32);\n"
     "transitions is the (states, 256) byte table, C-contiguous."},
    {"walk_tokens", walk_tokens, METH_VARARGS,
     "walk_tokens(transitions, data, tokens, states, positions, remaining, alive) -> None\n\n"
     "For each i, walk the bytes data[positions[i] : positions[i] + remaining[i]] from DFA state states[i]\n"
     "and set alive[tokens[i]] to 1 when the walk does not reach the dead state 0 (other entries are left as\n"
     "they are). transitions: the (states, 256) int32 byte table, C-contiguous; data: uint8; tokens, states,\n"
     "positions, remaining: int64; alive: a writable array of 1-byte items (numpy bool)."},
    {"walk_text_run", walk_text_run, METH_VARARGS,
     "walk_text_run(transitions, live_bits, data, offsets, others, prefix, lead_bounds, exit_bounds,\n"
     "              chain_states, longer, is_text, ascii_only, words, marked, looping, min_length, up_to,\n"
     "              lead_positions, first_data, first_offsets) -> None\n\n"
     "The walks of a text run's loop walk (``text_runs.TextRun`` and the state's chain of majority moves):\n"
     "set the bit of each token of ``marked`` in ``words`` (int32, bit t % 32 of word t / 32: a packed mask),\n"
     "then that of each token t that walks from chain_states[0] without reaching the dead state 0,\n"
     "among the others starting with a byte that state takes (others[lead_bounds[b]:lead_bounds[b + 1]]),\n"
     "the others whose exit byte (after a prefix of prefix[i] chain bytes) some chain state takes or, unless\n"
     "looping, whose prefix outruns the chain (others[exit_bounds[b]:exit_bounds[b + 1]], longest prefix\n"
     "first), and the text tokens of ``longer`` not alive yet; tokens of at most min_length bytes are left\n"
     "as they are. transitions: the (states, 256) int32 byte table; live_bits: its bytes not leading to 0,\n"
     "(states, 4) uint64; data: uint8, token t's bytes data[offsets[t]:offsets[t + 1]]; is_text, ascii_only:\n"
     "1-byte items, one per token; the other arrays int64. Bits already set in ``words`` stay set. The tokens\n"
     "of the first-byte groups (others[:lead_bounds[256]]) are read from first_data (uint8): token others[i]'s\n"
     "bytes are first_data[first_offsets[p]:first_offsets[p + 1]] for p = lead_positions[i] (int32)."},
    {"determinize", determinize, METH_VARARGS,
     "determinize(n_states, epsilon_moves, byte_moves, start, accept, max_states)\n"
     "    -> (byte classes as int32 bytes, class count, int32 table, accepting flags), or None past max_states\n\n"
     "Subset construction of a byte NFA (``regex.nfa.Nfa``: empty moves as int32 (source, target) pairs,\n"
     "byte moves as (source, lo, hi, target)) over its byte classes, of the states that can reach ``accept``\n"
     "only: the table's rows are DFA states (0 dead, 1 start), its columns byte classes."},
    {"mask_keys", mask_keys, METH_VARARGS,
     "mask_keys(masks, words) -> (keys, first)\n\n"
     "For each row of ``masks`` (int32, rows of ``words`` words, C-contiguous): a 32-bit key (equal rows have\n"
     "equal keys) and the index of the first row equal to it byte for byte (its own index when none before\n"
     "is). Both as lists."},
    {"distinct_successors", distinct_successors, METH_VARARGS,
     "distinct_successors(table, n_classes) -> (successors as int32 bytes, starts as int64 bytes)\n\n"
     "Each state's distinct targets other than the dead state 0, in increasing order, from its row of ``table``\n"
     "(int32, rows of ``n_classes`` entries, C-contiguous): state s's are\n"
     "successors[starts[s]:starts[s + 1]]."},
    {"live_weight_sums", live_weight_sums, METH_VARARGS,
     "live_weight_sums(table, n_classes, weights) -> float64 bytes, one per state\n\n"
     "Per row of ``table`` (int32, rows of ``n_classes`` targets, C-contiguous): the sum of ``weights``\n"
     "(float64, one per class) over the classes that do not lead to the dead state 0."},
    {"third_level_estimate", third_level_estimate, METH_VARARGS,
     "third_level_estimate(table, n_classes, byte_classes, live_bytes, counts) -> int64 bytes, one per state\n\n"
     "Per state of ``table`` (as in live_weight_sums): the sum, over its live classes c1 leading to t, of\n"
     "counts[b1, b2] (float32 (256, 256), exact integers) for the bytes b1 of class c1 and b2 of a class live\n"
     "in t, both set in ``live_bytes`` (uint8, 256). byte_classes: int32, each byte's class."},
    {"majority_moves", majority_moves, METH_VARARGS,
     "majority_moves(table, n_classes, class_sizes) -> (targets as int32 bytes, class bit sets as uint64 bytes)\n\n"
     "Per row of ``table`` (as in live_weight_sums): the target other than the dead state 0 that the most\n"
     "bytes lead to (class_sizes: int64, the bytes of each class; the lowest id among equals; 0 where every\n"
     "class leads to 0), and the classes leading there as a bit set of ceil(n_classes / 64) little-endian\n"
     "words per state (bit k of word k / 64: class k)."},
    {"regex_nfa", regex_nfa, METH_VARARGS,
     "regex_nfa(pattern, max_states) -> (num_states, epsilon_moves, byte_moves, start, accept, may_have_dead_states)\n"
     "                                or None\n\n"
     "The byte NFA ``regex.nfa.build_nfa(regex.parser.parse(pattern))`` builds, state for state: the empty moves\n"
     "as int32 (source, target) pairs and the byte moves as int32 (source, lo, hi, target) quadruples, in bytes.\n"
     "None for what it leaves to Python: '(?' groups other than '(?:', patterns Python rejects, escapes of\n"
     "non-ASCII characters, deep nesting, and NFAs whose size estimate passes ``max_states``."},
    {"character_targets", character_targets, METH_VARARGS,
     "character_targets(table, n_classes, byte_classes, states) -> int64 bytes, one per state asked\n\n"
     "For each of ``states`` (int64) of ``table`` (as in live_weight_sums; byte_classes: int32, each byte's\n"
     "class): the state every valid multi-byte UTF-8 character leads to, byte by byte, where every byte of\n"
     "each byte position's range makes the same move; else the dead state 0."},
    {"text_run_tables", text_run_tables, METH_VARARGS,
     "text_run_tables(data, offsets, lengths, other, single, place, others, prefix, resume, lead_bounds,\n"
     "                exit_byte, exit_bounds, lead_positions) -> how many others have no prefix\n\n"
     "The tables of ``text_runs.TextRun`` for the tokens marked in ``other`` (one-byte flags per token id; token\n"
     "t's bytes are data[offsets[t] : offsets[t] + lengths[t]], int64): each one's prefix (its leading bytes\n"
     "set in ``single``, 256 flags; it must have a byte outside) and resume (the run after its exit byte).\n"
     "Written: ``others`` (ids), ``prefix``, ``resume``: first the tokens with no prefix by first byte, then the\n"
     "others by exit byte, the longest prefix first (ids increasing among equals); ``lead_bounds`` and\n"
     "``exit_bounds`` (257 int64 each) the groups' bounds in that order; ``exit_byte`` (uint8) the exit byte of\n"
     "each of the second part, from its index 0; ``lead_positions`` (int32) place[t] of each of the first part."},
    {"refine_partition", refine_partition, METH_VARARGS,
     "refine_partition(table, block, record_rounds, max_rounds) -> [(round, bytearray of int64 labels)]\n\n"
     "Moore refinement of the partition ``block`` (int64 labels, one per state, below the state count, any\n"
     "order;\n"
     "replaced by the partition reached, labelled by first appearance) under ``table`` (int32, one row of\n"
     "successors per state, C-contiguous), until stable or for ``max_rounds`` rounds (negative: no bound).\n"
     "Returns the partitions after each round listed in ``record_rounds`` (increasing int64) that split a\n"
     "block, labelled by first appearance."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", "Native kernels of outlines_core.", -1, methods};

PyMODINIT_FUNC PyInit__native(void) {
    if (PyType_Ready(&TokenMoverType) < 0) return NULL;
    PyObject *created = PyModule_Create(&module);
    if (!created) return NULL;
    Py_INCREF(&TokenMoverType);
    if (PyModule_AddObject(created, "TokenMover", (PyObject *)&TokenMoverType) < 0) {
        Py_DECREF(&TokenMoverType);
        Py_DECREF(created);
        return NULL;
    }
    return created;
}
