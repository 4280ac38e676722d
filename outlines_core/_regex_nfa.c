/* Regex text -> byte NFA in C: ``regex/parser.py`` and ``regex/nfa.py`` for the patterns they accept
 * without flags, the same automaton state for state (the tests compare the two on fixed, schema and random
 * patterns).
 *
 * Why native code: the Python parser and Thompson builder cost a compile 0.3 ms for a number or a date and
 * 1 to 2.5 ms for a JSON schema's regex (nested-8: 2.3 ms of a 17 ms compile), a Python call or two per
 * character and per NFA state; here they cost a few tens of microseconds.
 *
 * The C version declines (returns None, and the Python one runs) whatever it does not handle exactly as
 * Python does: any '(?' group but '(?:' (flags, names, lookarounds, comments), any pattern the Python parser
 * rejects (its error says where and why), escapes of non-ASCII characters, nesting past MAX_DEPTH, and
 * NFAs whose size estimate passes the caller's bound (Python raises DfaTooLargeError). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CODE_POINT 0x10FFFF
#define SURROGATE_LO 0xD800
#define SURROGATE_HI 0xDFFF
#define MAX_REPEAT 100000 /* parser.py's MAX_REPEAT */
#define MAX_DEPTH 200     /* nested groups and quantifiers; deeper patterns go to Python */

/* ---- growable arrays */

typedef struct {
    int32_t *items;
    Py_ssize_t count, capacity;
} IntList;

static int list_reserve(IntList *list, Py_ssize_t extra) {
    if (list->count + extra <= list->capacity) return 0;
    Py_ssize_t size = list->capacity ? list->capacity : 64;
    while (size < list->count + extra) size *= 2;
    int32_t *items = realloc(list->items, (size_t)size * sizeof(int32_t));
    if (!items) return -1;
    list->items = items;
    list->capacity = size;
    return 0;
}

static int list_push(IntList *list, int32_t value) {
    if (list_reserve(list, 1) < 0) return -1;
    list->items[list->count++] = value;
    return 0;
}

/* ---- syntax tree: nodes in one array; a node's children (or a set's ranges) are a slice of ``slots`` */

enum { CHARSET, CONCAT, ALTERNATION, REPEAT };

typedef struct {
    int kind;
    Py_ssize_t first, count; /* CHARSET: ranges as (lo, hi) pairs in ``slots``; CONCAT, ALTERNATION: child nodes */
    int32_t child, min, max; /* REPEAT; max -1: unbounded */
} Node;

typedef struct {
    const Py_UCS4 *text;
    Py_ssize_t length, pos;
    int declined; /* set on anything left to Python: the caller returns None */
    int depth;
    Node *nodes;
    Py_ssize_t n_nodes, node_capacity;
    IntList slots;   /* children and ranges */
    IntList scratch; /* ranges being collected */
} Parser;

#define DECLINE(p) ((p)->declined = 1, -1)

static int32_t new_node(Parser *p, Node node) {
    if (p->n_nodes == p->node_capacity) {
        Py_ssize_t size = p->node_capacity ? 2 * p->node_capacity : 256;
        Node *nodes = realloc(p->nodes, (size_t)size * sizeof(Node));
        if (!nodes) return DECLINE(p);
        p->nodes = nodes;
        p->node_capacity = size;
    }
    p->nodes[p->n_nodes] = node;
    return (int32_t)p->n_nodes++;
}

static int range_order(const void *a, const void *b) {
    const int32_t *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

/* ``ranges`` (pairs) normalized in place as ``ast.normalize_ranges``: surrogates cut out, sorted, adjacent and
 * overlapping ranges merged. Returns the number of pairs kept (the array may need one more pair per range). */
static Py_ssize_t normalize(int32_t *ranges, Py_ssize_t pairs, int32_t *work) {
    Py_ssize_t kept = 0;
    for (Py_ssize_t i = 0; i < pairs; i++) {
        int32_t lo = ranges[2 * i], hi = ranges[2 * i + 1];
        if (lo > hi) continue;
        if (lo < SURROGATE_LO && hi > SURROGATE_HI) {
            work[2 * kept] = lo, work[2 * kept + 1] = SURROGATE_LO - 1, kept++;
            work[2 * kept] = SURROGATE_HI + 1, work[2 * kept + 1] = hi, kept++;
            continue;
        }
        if (lo >= SURROGATE_LO && lo <= SURROGATE_HI) lo = SURROGATE_HI + 1;
        if (hi >= SURROGATE_LO && hi <= SURROGATE_HI) hi = SURROGATE_LO - 1;
        if (lo <= hi) work[2 * kept] = lo, work[2 * kept + 1] = hi, kept++;
    }
    qsort(work, (size_t)kept, 2 * sizeof(int32_t), range_order);
    Py_ssize_t merged = 0;
    for (Py_ssize_t i = 0; i < kept; i++) {
        int32_t lo = work[2 * i], hi = work[2 * i + 1];
        if (merged && lo <= ranges[2 * merged - 1] + 1) {
            if (hi > ranges[2 * merged - 1]) ranges[2 * merged - 1] = hi;
        } else {
            ranges[2 * merged] = lo, ranges[2 * merged + 1] = hi, merged++;
        }
    }
    return merged;
}

/* A CHARSET node of the ranges in p->scratch (normalized, complemented over every code point when
 * ``negate``); the scratch list is emptied. */
static int32_t charset_node(Parser *p, int negate) {
    Py_ssize_t pairs = p->scratch.count / 2;
    /* Room for the surrogate cut (one more pair per range) and a complement (one more pair). */
    int32_t *work = malloc((size_t)(4 * pairs + 4) * sizeof(int32_t));
    int32_t *ranges = malloc((size_t)(4 * pairs + 4) * sizeof(int32_t));
    if (!work || !ranges) {
        free(work), free(ranges);
        return DECLINE(p);
    }
    memcpy(ranges, p->scratch.items, (size_t)p->scratch.count * sizeof(int32_t));
    p->scratch.count = 0;
    Py_ssize_t count = normalize(ranges, pairs, work);
    if (negate) { /* ``CharSet.negate``: the gaps, normalized again (which cuts the surrogates) */
        Py_ssize_t gaps = 0;
        int32_t next_lo = 0;
        for (Py_ssize_t i = 0; i < count; i++) {
            if (ranges[2 * i] > next_lo) work[2 * gaps] = next_lo, work[2 * gaps + 1] = ranges[2 * i] - 1, gaps++;
            next_lo = ranges[2 * i + 1] + 1;
        }
        if (next_lo <= MAX_CODE_POINT) work[2 * gaps] = next_lo, work[2 * gaps + 1] = MAX_CODE_POINT, gaps++;
        memcpy(ranges, work, (size_t)(2 * gaps) * sizeof(int32_t));
        count = normalize(ranges, gaps, work);
    }
    Py_ssize_t first = p->slots.count;
    int failed = list_reserve(&p->slots, 2 * count) < 0;
    if (!failed) {
        memcpy(p->slots.items + first, ranges, (size_t)(2 * count) * sizeof(int32_t));
        p->slots.count += 2 * count;
    }
    free(work), free(ranges);
    if (failed) return DECLINE(p);
    return new_node(p, (Node){CHARSET, first, count, 0, 0, 0});
}

static int32_t single(Parser *p, int32_t code) {
    p->scratch.count = 0;
    if (list_push(&p->scratch, code) < 0 || list_push(&p->scratch, code) < 0) return DECLINE(p);
    return charset_node(p, 0);
}

/* The ranges of the class escapes \d \w \s (parser.py's DIGIT, WORD, SPACE), pushed to p->scratch. */
static int push_class_escape(Parser *p, Py_UCS4 letter) {
    static const int32_t digit[] = {0x30, 0x39};
    static const int32_t word[] = {0x30, 0x39, 0x41, 0x5A, 0x5F, 0x5F, 0x61, 0x7A};
    static const int32_t space[] = {0x09, 0x0D, 0x20, 0x20};
    const int32_t *ranges;
    int count;
    switch (letter | 0x20) {
    case 'd': ranges = digit, count = 2; break;
    case 'w': ranges = word, count = 8; break;
    default: ranges = space, count = 4; break;
    }
    for (int i = 0; i < count; i++)
        if (list_push(&p->scratch, ranges[i]) < 0) return -1;
    return 0;
}

static int is_class_escape(Py_UCS4 c) { return c == 'd' || c == 'D' || c == 'w' || c == 'W' || c == 's' || c == 'S'; }

static int hex_value(Py_UCS4 c) {
    if (c >= '0' && c <= '9') return (int)(c - '0');
    if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return (int)(c - 'A' + 10);
    return -1;
}

static Py_UCS4 peek(Parser *p, Py_ssize_t offset) {
    Py_ssize_t at = p->pos + offset;
    return at < p->length ? p->text[at] : 0xFFFFFFFF; /* past the end: no character */
}

#define END 0xFFFFFFFF

/* ``parse_escape``: the code point after a backslash, or -2 for a class escape (its ranges pushed to
 * p->scratch, complemented by the caller for \D \W \S, flagged in *negated); -1: declined. */
static int32_t parse_escape(Parser *p, int in_class, int *negated) {
    p->pos++; /* the backslash */
    Py_UCS4 c = peek(p, 0);
    if (c == END || c > 0x7F) return DECLINE(p); /* a lone backslash (an error), or a non-ASCII escape */
    p->pos++;
    if (is_class_escape(c)) {
        *negated = c < 'a';
        return push_class_escape(p, c) < 0 ? DECLINE(p) : -2;
    }
    switch (c) {
    case 'n': return 0x0A;
    case 't': return 0x09;
    case 'r': return 0x0D;
    case 'f': return 0x0C;
    case 'v': return 0x0B;
    case 'a': return 0x07;
    }
    if (c == 'b' && in_class) return 0x08;
    if (c == 'x' || c == 'u' || c == 'U') {
        int width = c == 'x' ? 2 : c == 'u' ? 4 : 8;
        int64_t value = 0;
        for (int i = 0; i < width; i++) {
            int digit = hex_value(peek(p, i));
            if (digit < 0) return DECLINE(p);
            value = value * 16 + digit;
        }
        if (value > MAX_CODE_POINT) return DECLINE(p);
        p->pos += width;
        return (int32_t)value;
    }
    if (c == '0') {
        int32_t value = 0;
        for (int digits = 1; digits < 3 && peek(p, 0) >= '0' && peek(p, 0) <= '7'; digits++, p->pos++)
            value = value * 8 + (int32_t)(peek(p, 0) - '0');
        return value;
    }
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return DECLINE(p); /* backreferences, anchors, \N and unknown letters: Python's errors */
    return (int32_t)c;
}

static int32_t parse_alternation(Parser *p);

/* ``try_parse_braces`` at '{': 1 with the bounds (max -1: none), 0 when it is a literal '{'; -1 declined
 * (a bound above MAX_REPEAT or min above max: Python's errors). Moves past the braces only when given. */
static int parse_braces(Parser *p, int32_t *min, int32_t *max) {
    Py_ssize_t start = p->pos, end = start + 1;
    while (end < p->length && p->text[end] != '}') end++;
    if (end >= p->length) return 0;
    Py_ssize_t comma = -1;
    for (Py_ssize_t i = start + 1; i < end; i++)
        if (p->text[i] == ',') {
            comma = i;
            break;
        }
    Py_ssize_t low_end = comma < 0 ? end : comma;
    int64_t values[2] = {0, -1};
    Py_ssize_t bounds[2][2] = {{start + 1, low_end}, {comma < 0 ? end : comma + 1, end}};
    for (int part = 0; part < 2; part++) {
        Py_ssize_t from = bounds[part][0], to = bounds[part][1];
        if (from == to) continue;
        int64_t value = 0;
        for (Py_ssize_t i = from; i < to; i++) {
            Py_UCS4 c = p->text[i];
            if (c < '0' || c > '9') return 0; /* not a quantifier (a second ',' included): a literal '{' */
            if (value <= MAX_REPEAT) value = value * 10 + (c - '0');
        }
        values[part] = value;
    }
    if (low_end == start + 1 && comma < 0) return 0; /* '{}' */
    int64_t low = values[0], high = comma < 0 ? low : values[1];
    if (high >= 0 && high < low) return DECLINE(p);
    if (low > MAX_REPEAT || high > MAX_REPEAT) return DECLINE(p);
    *min = (int32_t)low, *max = (int32_t)high;
    p->pos = end + 1;
    return 1;
}

static int32_t parse_class(Parser *p) {
    p->pos++; /* '[' */
    int negate = 0;
    if (peek(p, 0) == '^') negate = 1, p->pos++;
    p->scratch.count = 0;
    /* Class escapes are collected apart, complemented where negated (\D), then joined. */
    int first = 1;
    for (;;) {
        Py_UCS4 c = peek(p, 0);
        if (c == END) return DECLINE(p);
        if (c == ']' && !first) {
            p->pos++;
            break;
        }
        first = 0;
        int32_t low;
        if (c == '\\') {
            Py_ssize_t before = p->scratch.count;
            int negated = 0;
            low = parse_escape(p, 1, &negated);
            if (low == -1) return -1;
            if (low == -2) {
                if (negated) { /* \D \W \S: their complement's ranges replace theirs */
                    Py_ssize_t pairs = (p->scratch.count - before) / 2;
                    int32_t *escape = p->scratch.items + before;
                    int32_t gaps[16];
                    int n_gaps = 0;
                    int32_t next_lo = 0;
                    for (Py_ssize_t i = 0; i < pairs; i++) {
                        if (escape[2 * i] > next_lo) gaps[2 * n_gaps] = next_lo, gaps[2 * n_gaps + 1] = escape[2 * i] - 1, n_gaps++;
                        next_lo = escape[2 * i + 1] + 1;
                    }
                    gaps[2 * n_gaps] = next_lo, gaps[2 * n_gaps + 1] = MAX_CODE_POINT, n_gaps++;
                    p->scratch.count = before;
                    for (int i = 0; i < 2 * n_gaps; i++)
                        if (list_push(&p->scratch, gaps[i]) < 0) return DECLINE(p);
                }
                continue; /* a '-' after a class escape is a literal */
            }
        } else {
            if (c == '[' && (peek(p, 1) == ':' || peek(p, 1) == '=' || peek(p, 1) == '.')) return DECLINE(p);
            p->pos++;
            low = (int32_t)c;
        }
        int32_t high = low;
        if (peek(p, 0) == '-' && peek(p, 1) != END && peek(p, 1) != ']') {
            p->pos++;
            Py_UCS4 d = peek(p, 0);
            if (d == '\\') {
                int negated = 0;
                Py_ssize_t before = p->scratch.count;
                high = parse_escape(p, 1, &negated);
                if (high == -1) return -1;
                if (high == -2) {
                    p->scratch.count = before;
                    return DECLINE(p); /* a class escape cannot end a range */
                }
            } else {
                if (d == '[' && (peek(p, 1) == ':' || peek(p, 1) == '=' || peek(p, 1) == '.')) return DECLINE(p);
                p->pos++;
                high = (int32_t)d;
            }
            if (high < low) return DECLINE(p);
        }
        if (list_push(&p->scratch, low) < 0 || list_push(&p->scratch, high) < 0) return DECLINE(p);
    }
    int32_t node = charset_node(p, negate);
    if (node >= 0 && p->nodes[node].count == 0) return DECLINE(p); /* a class matching nothing: Python's error */
    return node;
}

static int32_t parse_atom(Parser *p) {
    Py_UCS4 c = peek(p, 0);
    if (c == '(') {
        if (++p->depth > MAX_DEPTH) return DECLINE(p);
        p->pos++;
        if (peek(p, 0) == '?') {
            if (peek(p, 1) != ':') return DECLINE(p); /* flags, names, lookarounds, comments: Python's */
            p->pos += 2;
        }
        int32_t node = parse_alternation(p);
        if (node < 0) return -1;
        if (peek(p, 0) != ')') return DECLINE(p);
        p->pos++;
        p->depth--;
        return node;
    }
    if (c == '[') return parse_class(p);
    if (c == '.') { /* any character but newline */
        p->pos++;
        p->scratch.count = 0;
        if (list_push(&p->scratch, 0) < 0 || list_push(&p->scratch, 0x09) < 0 || list_push(&p->scratch, 0x0B) < 0 ||
            list_push(&p->scratch, MAX_CODE_POINT) < 0)
            return DECLINE(p);
        return charset_node(p, 0);
    }
    if (c == '^' || c == '$' || c == '*' || c == '+' || c == '?') return DECLINE(p);
    if (c == '{') {
        int32_t min, max;
        Py_ssize_t saved = p->pos;
        int braces = parse_braces(p, &min, &max);
        p->pos = saved;
        if (braces != 0) return DECLINE(p); /* nothing to repeat */
    }
    if (c == '\\') {
        int negated = 0;
        p->scratch.count = 0;
        int32_t code = parse_escape(p, 0, &negated);
        if (code == -1) return -1;
        if (code == -2) return charset_node(p, negated);
        return single(p, code);
    }
    p->pos++;
    return single(p, (int32_t)c);
}

static int32_t parse_quantifiers(Parser *p, int32_t atom) {
    int32_t min, max;
    Py_UCS4 c = peek(p, 0);
    if (c == '*') p->pos++, min = 0, max = -1;
    else if (c == '+') p->pos++, min = 1, max = -1;
    else if (c == '?') p->pos++, min = 0, max = 1;
    else if (c == '{') {
        int braces = parse_braces(p, &min, &max);
        if (braces <= 0) return braces < 0 ? -1 : atom;
    } else
        return atom;
    atom = new_node(p, (Node){REPEAT, 0, 0, atom, min, max});
    if (atom < 0) return -1;
    if (peek(p, 0) == '?') p->pos++;         /* lazy: the same strings */
    else if (peek(p, 0) == '+') return DECLINE(p); /* possessive */
    c = peek(p, 0);
    if (c == '*' || c == '+' || c == '?') return DECLINE(p); /* multiple repeat */
    if (c == '{') {
        Py_ssize_t saved = p->pos;
        int braces = parse_braces(p, &min, &max);
        p->pos = saved;
        if (braces != 0) return DECLINE(p);
    }
    return atom;
}

/* A CONCAT or ALTERNATION node of the nodes items[0:count] (the single item itself where there is one, for
 * ``single_unwrapped``). */
static int32_t compound(Parser *p, int kind, const int32_t *items, Py_ssize_t count, int single_unwrapped) {
    if (count == 1 && single_unwrapped) return items[0];
    Py_ssize_t first = p->slots.count;
    if (list_reserve(&p->slots, count) < 0) return DECLINE(p);
    memcpy(p->slots.items + first, items, (size_t)count * sizeof(int32_t));
    p->slots.count += count;
    return new_node(p, (Node){kind, first, count, 0, 0, 0});
}

static int32_t parse_concatenation(Parser *p) {
    IntList items = {NULL, 0, 0};
    int32_t result = -1;
    while (p->pos < p->length && peek(p, 0) != '|' && peek(p, 0) != ')') {
        int32_t atom = parse_atom(p);
        if (atom < 0) goto done;
        atom = parse_quantifiers(p, atom);
        if (atom < 0 || list_push(&items, atom) < 0) goto done;
    }
    result = compound(p, CONCAT, items.items, items.count, 1);
done:
    free(items.items);
    if (result < 0) p->declined = 1;
    return result;
}

static int32_t parse_alternation(Parser *p) {
    IntList options = {NULL, 0, 0};
    int32_t result = -1, option = parse_concatenation(p);
    if (option < 0 || list_push(&options, option) < 0) goto done;
    while (peek(p, 0) == '|') {
        p->pos++;
        option = parse_concatenation(p);
        if (option < 0 || list_push(&options, option) < 0) goto done;
    }
    result = compound(p, ALTERNATION, options.items, options.count, 1);
done:
    free(options.items);
    if (result < 0) p->declined = 1;
    return result;
}

/* ``nfa._estimate_states``, saturating at ``cap``. */
static int64_t estimate(const Parser *p, int32_t index, int64_t cap) {
    const Node *node = &p->nodes[index];
    int64_t total;
    switch (node->kind) {
    case CHARSET: { /* ASCII ranges are single edges; a wider range splits into at most ~8 UTF-8 sequences */
        int64_t wide = 0;
        for (Py_ssize_t i = 0; i < node->count; i++) wide += p->slots.items[node->first + 2 * i + 1] >= 0x80;
        return 2 + 24 * wide;
    }
    case CONCAT:
    case ALTERNATION:
        total = node->kind == CONCAT ? 1 : 2;
        for (Py_ssize_t i = 0; i < node->count && total <= cap; i++)
            total += estimate(p, p->slots.items[node->first + i], cap);
        return total;
    default: {
        int64_t item = estimate(p, node->child, cap);
        int64_t copies = node->max < 0 ? (node->min > 1 ? node->min : 1) : (node->max > 1 ? node->max : 1);
        if (item + 2 > cap / copies + 1) return cap + 1;
        return 2 + (item + 2) * copies;
    }
    }
}

/* ---- UTF-8: ``utf8.utf8_sequences`` and ``nfa._charset_shape`` */

typedef struct {
    int length;
    uint8_t lo[4], hi[4];
} Sequence;

static int encode(int32_t code, uint8_t *out) {
    if (code < 0x80) return out[0] = (uint8_t)code, 1;
    if (code < 0x800) return out[0] = (uint8_t)(0xC0 | (code >> 6)), out[1] = (uint8_t)(0x80 | (code & 0x3F)), 2;
    if (code < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (code >> 12)), out[1] = (uint8_t)(0x80 | ((code >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (code & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (code >> 18)), out[1] = (uint8_t)(0x80 | ((code >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((code >> 6) & 0x3F)), out[3] = (uint8_t)(0x80 | (code & 0x3F));
    return 4;
}

typedef struct {
    Sequence *items;
    int count, capacity;
} Sequences;

static int split_same_length(int32_t lo, int32_t hi, Sequences *out) {
    if (lo >= 0x80) {
        uint8_t bytes[4];
        int length = encode(lo, bytes);
        for (int continuations = 1; continuations < length; continuations++) {
            int32_t mask = (1 << (6 * continuations)) - 1;
            if ((lo & ~mask) != (hi & ~mask)) {
                if (lo & mask)
                    return split_same_length(lo, lo | mask, out) < 0 ? -1 : split_same_length((lo | mask) + 1, hi, out);
                if ((hi & mask) != mask)
                    return split_same_length(lo, (hi & ~mask) - 1, out) < 0 ? -1 : split_same_length(hi & ~mask, hi, out);
            }
        }
    }
    if (out->count == out->capacity) {
        int size = out->capacity ? 2 * out->capacity : 16;
        Sequence *items = realloc(out->items, (size_t)size * sizeof(Sequence));
        if (!items) return -1;
        out->items = items, out->capacity = size;
    }
    Sequence *sequence = &out->items[out->count++];
    if (lo < 0x80) {
        sequence->length = 1, sequence->lo[0] = (uint8_t)lo, sequence->hi[0] = (uint8_t)hi;
        return 0;
    }
    sequence->length = encode(lo, sequence->lo);
    encode(hi, sequence->hi);
    return 0;
}

typedef struct {
    int32_t source, lo, hi, target;
} Edge;

typedef struct {
    int32_t inner;
    Edge *edges;
    int count;
} Shape;

static int edge_order(const void *a, const void *b) { /* (lo, hi, target) */
    const Edge *x = a, *y = b;
    if (x->lo != y->lo) return x->lo < y->lo ? -1 : 1;
    if (x->hi != y->hi) return x->hi < y->hi ? -1 : 1;
    return x->target < y->target ? -1 : x->target > y->target;
}

/* ``_joined``: a state's moves with targets replaced by their representative, sorted, adjacent byte ranges
 * to one target joined; written to ``out`` (room for ``count``), returns how many. */
static int joined(const Edge *moves, int count, const int32_t *same_as, Edge *out) {
    for (int i = 0; i < count; i++) out[i] = moves[i], out[i].target = same_as[moves[i].target];
    qsort(out, (size_t)count, sizeof(Edge), edge_order);
    int kept = 0;
    for (int i = 0; i < count; i++) {
        if (kept && out[kept - 1].target == out[i].target && out[kept - 1].hi + 1 == out[i].lo) out[kept - 1].hi = out[i].hi;
        else out[kept++] = out[i];
    }
    return kept;
}

/* Sets of more UTF-8 sequences than this (a few hundred scattered ranges) are Python's: the suffix sharing
 * here compares states pairwise. */
#define MAX_SEQUENCES 256

/* ``_charset_shape`` of ranges[0:2*count]: inner states and edges relative to the fragment's entry 0 and exit
 * 1. Returns 0; -1 out of memory; -2 past MAX_SEQUENCES. */
static int charset_shape(const int32_t *ranges, Py_ssize_t count, Shape *shape) {
    static const int32_t limits[4] = {0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
    Sequences sequences = {NULL, 0, 0};
    for (Py_ssize_t r = 0; r < count; r++) {
        int32_t previous = -1;
        for (int l = 0; l < 4; l++) {
            int32_t lo = ranges[2 * r] > previous + 1 ? ranges[2 * r] : previous + 1;
            int32_t hi = ranges[2 * r + 1] < limits[l] ? ranges[2 * r + 1] : limits[l];
            if (lo <= hi && split_same_length(lo, hi, &sequences) < 0) {
                free(sequences.items);
                return -1;
            }
            previous = limits[l];
        }
    }
    /* The trie of the sequences' leading byte ranges (a linear lookup: a set has a few dozen at most). */
    int capacity = 4 * sequences.count + 4;
    Edge *edges = malloc((size_t)capacity * sizeof(Edge));
    Edge *scratch = malloc((size_t)capacity * sizeof(Edge));
    int32_t *same_as = malloc((size_t)(capacity + 2) * sizeof(int32_t));
    int32_t *number = malloc((size_t)(capacity + 2) * sizeof(int32_t));
    Edge *result = malloc((size_t)capacity * sizeof(Edge));
    Edge *mine = malloc((size_t)capacity * sizeof(Edge)), *theirs = malloc((size_t)capacity * sizeof(Edge));
    int n_edges = 0, inner = 0, status = -1;
    if (sequences.count > MAX_SEQUENCES) {
        status = -2;
        goto done;
    }
    if (!edges || !scratch || !same_as || !number || !result || !mine || !theirs) goto done;
    for (int s = 0; s < sequences.count; s++) {
        const Sequence *sequence = &sequences.items[s];
        int32_t state = 0;
        for (int position = 0; position < sequence->length; position++) {
            int32_t lo = sequence->lo[position], hi = sequence->hi[position];
            if (position == sequence->length - 1) {
                edges[n_edges++] = (Edge){state, lo, hi, 1};
                break;
            }
            int32_t target = -1;
            for (int e = 0; e < n_edges; e++)
                if (edges[e].source == state && edges[e].lo == lo && edges[e].hi == hi && edges[e].target != 1) {
                    target = edges[e].target;
                    break;
                }
            if (target < 0) {
                target = 2 + inner++;
                edges[n_edges++] = (Edge){state, lo, hi, target};
            }
            state = target;
        }
    }
    /* ``_share_suffixes``: from the highest inner state down, each takes the first state with its joined
     * moves as representative; then the kept ones are renumbered in order. Edges are listed per source in
     * the order they were made (a state's moves: ``outgoing``). */
    same_as[0] = 0, same_as[1] = 1;
    for (int32_t state = inner + 1; state >= 2; state--) {
        int moves = 0;
        for (int e = 0; e < n_edges; e++)
            if (edges[e].source == state) scratch[moves++] = edges[e];
        int n_mine = joined(scratch, moves, same_as, mine);
        same_as[state] = state;
        for (int32_t other = inner + 1; other > state; other--) {
            if (same_as[other] != other) continue;
            int others = 0;
            for (int e = 0; e < n_edges; e++)
                if (edges[e].source == other) scratch[others++] = edges[e];
            int n_theirs = joined(scratch, others, same_as, theirs);
            if (n_theirs != n_mine) continue;
            int equal = 1;
            for (int i = 0; i < n_mine && equal; i++)
                equal = mine[i].lo == theirs[i].lo && mine[i].hi == theirs[i].hi && mine[i].target == theirs[i].target;
            if (equal) {
                same_as[state] = other;
                break;
            }
        }
    }
    int kept = 0;
    number[0] = 0, number[1] = 1;
    for (int32_t state = 2; state <= inner + 1; state++)
        if (same_as[state] == state) number[state] = 2 + kept++;
    int n_result = 0;
    for (int32_t source = 0; source <= inner + 1; source++) {
        if (source == 1 || (source >= 2 && same_as[source] != source)) continue;
        int moves = 0;
        for (int e = 0; e < n_edges; e++)
            if (edges[e].source == source) scratch[moves++] = edges[e];
        int n = joined(scratch, moves, same_as, scratch);
        for (int i = 0; i < n; i++)
            result[n_result++] = (Edge){number[source], scratch[i].lo, scratch[i].hi, number[scratch[i].target]};
    }
    shape->inner = kept;
    shape->edges = result;
    shape->count = n_result;
    result = NULL;
    status = 0;
done:
    free(sequences.items);
    free(edges), free(scratch), free(same_as), free(number), free(result), free(mine), free(theirs);
    return status;
}

/* ---- the Thompson construction (``nfa._Builder``) */

typedef struct {
    const Parser *p;
    int32_t num_states;
    IntList epsilon, moves;
    int made_empty_charset, failed, declined;
    Shape *shapes;   /* per CHARSET node that holds its shape (``shape_holder``) */
    int32_t *holder; /* per CHARSET node, the node holding its shape (-1: not known yet) */
    int32_t *shaped; /* the nodes holding a shape, each of distinct ranges */
    Py_ssize_t n_shaped;
} Builder;

static int32_t fragment(Builder *b, int32_t index, int32_t *exit);

/* The node holding the shape of a set with ``node``'s ranges, made or found on first use: a JSON schema's regex
 * repeats its string characters and escapes per field. */
static int32_t shape_holder(Builder *b, int32_t index) {
    if (b->holder[index] >= 0) return b->holder[index];
    const Node *node = &b->p->nodes[index];
    for (Py_ssize_t i = 0; i < b->n_shaped; i++) {
        const Node *other = &b->p->nodes[b->shaped[i]];
        if (other->count == node->count &&
            memcmp(b->p->slots.items + other->first, b->p->slots.items + node->first,
                   (size_t)(2 * node->count) * sizeof(int32_t)) == 0)
            return b->holder[index] = b->shaped[i];
    }
    int status = charset_shape(b->p->slots.items + node->first, node->count, &b->shapes[index]);
    if (status < 0) {
        if (status == -2) b->declined = 1;
        b->failed = 1;
        return -1;
    }
    b->shaped[b->n_shaped++] = index;
    return b->holder[index] = index;
}

static int32_t build_charset(Builder *b, int32_t index, int32_t *exit) {
    int32_t holder = shape_holder(b, index);
    if (holder < 0) return -1;
    const Shape *shape = &b->shapes[holder];
    int32_t start = b->num_states;
    b->num_states += 2 + shape->inner;
    if (list_reserve(&b->moves, 4 * shape->count) < 0) {
        b->failed = 1;
        return -1;
    }
    for (int i = 0; i < shape->count; i++) {
        int32_t *move = b->moves.items + b->moves.count;
        move[0] = start + shape->edges[i].source, move[1] = shape->edges[i].lo, move[2] = shape->edges[i].hi;
        move[3] = start + shape->edges[i].target;
        b->moves.count += 4;
    }
    if (!shape->count) b->made_empty_charset = 1;
    *exit = start + 1;
    return start;
}

static int epsilon(Builder *b, int32_t source, int32_t target) {
    if (list_push(&b->epsilon, source) < 0 || list_push(&b->epsilon, target) < 0) return b->failed = 1, -1;
    return 0;
}

static int32_t fragment(Builder *b, int32_t index, int32_t *exit) {
    const Node *node = &b->p->nodes[index];
    if (b->failed) return -1;
    if (node->kind == CHARSET) return build_charset(b, index, exit);
    if (node->kind == CONCAT) {
        int32_t start = b->num_states++, end = start;
        for (Py_ssize_t i = 0; i < node->count; i++) {
            int32_t item_exit;
            int32_t item_start = fragment(b, b->p->slots.items[node->first + i], &item_exit);
            if (item_start < 0 || epsilon(b, end, item_start) < 0) return -1;
            end = item_exit;
        }
        *exit = end;
        return start;
    }
    if (node->kind == ALTERNATION) {
        int32_t start = b->num_states++, end = b->num_states++;
        for (Py_ssize_t i = 0; i < node->count; i++) {
            int32_t option_exit;
            int32_t option_start = fragment(b, b->p->slots.items[node->first + i], &option_exit);
            if (option_start < 0 || epsilon(b, start, option_start) < 0 || epsilon(b, option_exit, end) < 0) return -1;
        }
        *exit = end;
        return start;
    }
    /* REPEAT: ``min`` copies made one after the other, then linked; then a loop or the optional copies. */
    int32_t start = b->num_states++, end = start;
    int32_t count = node->min > 0 ? node->min : 0;
    int32_t *ends = malloc((size_t)(2 * (count > 0 ? count : 1)) * sizeof(int32_t));
    if (!ends) return b->failed = 1, -1;
    for (int32_t i = 0; i < count; i++) {
        ends[2 * i] = fragment(b, node->child, &ends[2 * i + 1]);
        if (ends[2 * i] < 0) return free(ends), -1;
    }
    for (int32_t i = 0; i < count; i++) {
        if (epsilon(b, end, ends[2 * i]) < 0) return free(ends), -1;
        end = ends[2 * i + 1];
    }
    free(ends);
    if (node->max < 0) {
        int32_t loop = b->num_states++, item_exit;
        if (epsilon(b, end, loop) < 0) return -1;
        int32_t item_start = fragment(b, node->child, &item_exit);
        if (item_start < 0 || epsilon(b, loop, item_start) < 0 || epsilon(b, item_exit, loop) < 0) return -1;
        *exit = loop;
        return start;
    }
    int32_t optional = node->max - node->min;
    if (optional == 0) {
        *exit = end;
        return start;
    }
    int32_t final = b->num_states++;
    ends = malloc((size_t)(2 * optional) * sizeof(int32_t));
    if (!ends) return b->failed = 1, -1;
    for (int32_t i = 0; i < optional; i++) {
        ends[2 * i] = fragment(b, node->child, &ends[2 * i + 1]);
        if (ends[2 * i] < 0) return free(ends), -1;
    }
    for (int32_t i = 0; i < optional; i++) {
        if (epsilon(b, end, ends[2 * i]) < 0 || epsilon(b, end, final) < 0) return free(ends), -1;
        end = ends[2 * i + 1];
    }
    free(ends);
    if (epsilon(b, end, final) < 0) return -1;
    *exit = final;
    return start;
}

PyObject *regex_nfa(PyObject *self, PyObject *args) {
    PyObject *pattern;
    Py_ssize_t max_states;
    if (!PyArg_ParseTuple(args, "Un:regex_nfa", &pattern, &max_states)) return NULL;
    Py_UCS4 *text = PyUnicode_AsUCS4Copy(pattern);
    if (!text) return NULL;
    Parser p = {text, PyUnicode_GET_LENGTH(pattern), 0, 0, 0, NULL, 0, 0, {NULL, 0, 0}, {NULL, 0, 0}};
    Builder b = {&p, 0, {NULL, 0, 0}, {NULL, 0, 0}, 0, 0, 0, NULL, NULL, NULL, 0};
    PyObject *result = NULL;
    int32_t root = -1;
    /* Leading flags '(?i)' and everything Python parses differently are Python's. */
    if (p.length >= 2 && text[0] == '(' && text[1] == '?' && (p.length < 3 || text[2] != ':')) goto declined;
    root = parse_alternation(&p);
    if (root < 0 || p.declined || p.pos != p.length) goto declined;
    if (estimate(&p, root, max_states) > max_states) goto declined; /* Python raises DfaTooLargeError */
    b.shapes = calloc((size_t)p.n_nodes, sizeof(Shape));
    b.holder = malloc((size_t)p.n_nodes * sizeof(int32_t));
    b.shaped = malloc((size_t)p.n_nodes * sizeof(int32_t));
    if (!b.shapes || !b.holder || !b.shaped) goto no_memory;
    for (Py_ssize_t i = 0; i < p.n_nodes; i++) b.holder[i] = -1;
    int32_t exit;
    int32_t start = fragment(&b, root, &exit);
    if (b.declined) goto declined;
    if (start < 0 || b.failed) goto no_memory;
    static const char nothing[1] = {0}; /* y# makes None of a NULL buffer: an empty list has none */
    result = Py_BuildValue("(iy#y#iiO)", b.num_states, b.epsilon.items ? (const char *)b.epsilon.items : nothing,
                           (Py_ssize_t)(b.epsilon.count * 4), b.moves.items ? (const char *)b.moves.items : nothing,
                           (Py_ssize_t)(b.moves.count * 4), start, exit,
                           b.made_empty_charset ? Py_True : Py_False);
    goto done;
no_memory:
    PyErr_NoMemory();
    goto done;
declined:
    result = Py_NewRef(Py_None);
done:
    if (b.shapes)
        for (Py_ssize_t i = 0; i < p.n_nodes; i++) free(b.shapes[i].edges);
    free(b.shapes), free(b.holder), free(b.shaped);
    free(b.epsilon.items), free(b.moves.items);
    free(p.nodes), free(p.slots.items), free(p.scratch.items);
    PyMem_Free(text);
    return result;
}
