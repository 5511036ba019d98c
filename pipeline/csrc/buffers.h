/* Errors recorded without the GIL, growable buffers and the output column (part of _bcfarrow.c; included once, by it). */
#ifndef BCFARROW_BUFFERS_H
#define BCFARROW_BUFFERS_H


enum { VT_INT = 1, VT_FLOAT = 2, VT_STR = 3, VT_FLAG = 4 };
enum { BT_NULL = 0, BT_INT8 = 1, BT_INT16 = 2, BT_INT32 = 3, BT_FLOAT = 5, BT_CHAR = 7 };

/* ---- errors without the GIL ------------------------------------------------------------ */

/* Decoding runs with the GIL released (the task's other threads -- the input feeder, the Parquet
 * writer -- keep running), so the decoding code records an error here and the caller raises it
 * once it holds the GIL again. */
enum { ERR_NONE = 0, ERR_VALUE, ERR_MEMORY, ERR_OS, ERR_OVERFLOW };
static _Thread_local int err_kind;
static _Thread_local int err_errno;
static _Thread_local const char *err_msg;

static int fail(int kind, const char *msg) {
    err_kind = kind;
    err_msg = msg;
    return -1;
}

/* Raise the recorded error (needs the GIL). */
static void *raise_pending(void) {
    int kind = err_kind;
    err_kind = ERR_NONE;
    switch (kind) {
    case ERR_MEMORY: PyErr_NoMemory(); break;
    case ERR_OS: errno = err_errno; PyErr_SetFromErrno(PyExc_OSError); break;
    case ERR_OVERFLOW: PyErr_SetString(PyExc_OverflowError, err_msg); break;
    default: PyErr_SetString(PyExc_ValueError, err_msg ? err_msg : "BCF decoding failed"); break;
    }
    return NULL;
}

/* ---- growable buffers ------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
} Buf;

static int buf_reserve_slow(Buf *b, size_t extra) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return fail(ERR_MEMORY, NULL);
    b->p = p;
    b->cap = cap;
    return 0;
}
static inline int buf_reserve(Buf *b, size_t extra) {
    return b->len + extra <= b->cap ? 0 : buf_reserve_slow(b, extra);
}
static inline int buf_put(Buf *b, const void *src, size_t n) {
    if (buf_reserve(b, n) < 0) return -1;
    memcpy(b->p + b->len, src, n);
    b->len += n;
    return 0;
}
/* A fixed-size value: the common case inlined, so that it compiles to a store, not a memcpy call. */
#define BUF_PUT_T(b, T, v) do { \
        T _v = (v); \
        if ((b)->len + sizeof(T) > (b)->cap && buf_reserve((b), sizeof(T)) < 0) return -1; \
        memcpy((b)->p + (b)->len, &_v, sizeof(T)); \
        (b)->len += sizeof(T); \
    } while (0)

/* A bitmap grown one bit at a time (Arrow's validity layout: bit i of byte i/8, LSB first). */
static inline int bit_put(Buf *b, int64_t index, int set) {
    if ((size_t)(index >> 3) >= b->len) {
        if (buf_reserve(b, 1) < 0) return -1;
        b->p[b->len++] = 0;
    }
    if (set) b->p[index >> 3] |= (char)(1 << (index & 7));
    return 0;
}

/* ---- one output column ------------------------------------------------------------------ */

typedef struct {
    int vtype;        /* VT_* of the output values */
    int repeated;     /* list<vtype> rather than vtype */
    int64_t n;        /* entries: rows, or rows x samples */
    int64_t nulls;
    int64_t items;    /* repeated: values in all lists */
    Buf valid;        /* entries' validity bitmap */
    Buf offs;         /* repeated: int32 list offsets */
    Buf vals;         /* int64 or double values (per entry, or per item); flags: value bitmap */
    Buf soffs;        /* strings: int32 offsets */
    Buf data;         /* strings: bytes */
} Col;

static void col_free(Col *c) {
    free(c->valid.p); free(c->offs.p); free(c->vals.p); free(c->soffs.p); free(c->data.p);
    memset(c, 0, sizeof(*c));
}

/* Empties the column for a new batch, keeping its buffers' capacity (no re-growing, no new
 * page faults per batch). */
static int col_start(Col *c, int vtype, int repeated) {
    c->vtype = vtype;
    c->repeated = repeated;
    c->n = c->nulls = c->items = 0;
    c->valid.len = c->offs.len = c->vals.len = c->soffs.len = c->data.len = 0;
    int32_t zero = 0;
    if (repeated && buf_put(&c->offs, &zero, 4) < 0) return -1;
    if (vtype == VT_STR && buf_put(&c->soffs, &zero, 4) < 0) return -1;
    return 0;
}

static inline int str_item(Col *c, const char *p, size_t n) {
    if (c->data.len + n > INT32_MAX) {
        return fail(ERR_OVERFLOW, "string column above 2 GiB in one batch");
    }
    if (buf_put(&c->data, p, n) < 0) return -1;
    BUF_PUT_T(&c->soffs, int32_t, (int32_t)c->data.len);
    return 0;
}

/* Ends an entry: marks it valid or null and, for lists, closes its offsets. */
static inline int entry_end(Col *c, int valid) {
    if (bit_put(&c->valid, c->n, valid) < 0) return -1;
    if (!valid) c->nulls++;
    c->n++;
    if (c->repeated) BUF_PUT_T(&c->offs, int32_t, (int32_t)c->items);
    return 0;
}

static int col_null(Col *c) {
    if (c->vtype == VT_FLAG) {
        if (bit_put(&c->vals, c->n, 0) < 0) return -1;
        c->n++;
        return 0;
    }
    if (!c->repeated) {
        if (c->vtype == VT_INT) BUF_PUT_T(&c->vals, int64_t, 0);
        else if (c->vtype == VT_FLOAT) BUF_PUT_T(&c->vals, double, 0.0);
        else if (str_item(c, "", 0) < 0) return -1;
    }
    return entry_end(c, 0);
}

static int col_flag(Col *c, int set) {
    if (bit_put(&c->vals, c->n, set) < 0) return -1;
    c->n++;
    return 0;
}

#endif
