/*
 * _bcfarrow: decode the uncompressed BCF2 stream that `bcftools norm -Ou` writes into column
 * buffers that pipeline/native.py hands to Arrow without another copy of the text.
 *
 * Why this exists: the text path (bcftools query -> Arrow CSV -> string splitting) spends ~2.7 s
 * CPU per million records formatting numbers to text and parsing them back. This file reads the
 * binary records once and writes typed values straight into buffers.
 *
 * Written from the BCF2 description in the VCF specification (section 6 of VCFv4.3): header
 * text with the dictionaries, records of typed values, the missing and end-of-vector sentinels.
 * It needs only a C compiler and Python's headers: no htslib, no zlib. The stream is either raw
 * BCF or BGZF made of *stored* deflate blocks (what htslib writes for `-Ou`); a compressed
 * block is refused with a clear error rather than decoded.
 *
 * The values it produces are the values the text path produces, rule for rule (see
 * native.py's module docstring): in particular a Float is the float32 printed the way
 * `bcftools query` prints it (6 significant digits) and read back as a double, so both paths
 * give identical Parquet.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NULL_NUMERIC (-2147483648LL)

#include "csrc/buffers.h"
#include "csrc/values.h"
#include "csrc/stream.h"
#include "csrc/split.h"

/* ---- the decoder object ------------------------------------------------------------------- */

typedef struct {
    int id;           /* dictionary id of the INFO/FORMAT key */
    Col col;
} Field;

typedef struct {
    PyObject_HEAD
    Stream s;
    int header_done;
    int n_samples;
    int max_field;        /* longest string value accepted (bytes) */
    int n_info, n_fmt;
    Field *info, *fmt;
    int *info_slot, *fmt_slot;   /* dictionary id -> index in info/fmt, or -1 */
    int dict_size;
    int gt_id, csq_id, orig_id;
    int64_t records;
    int32_t last_rid, last_pos;
    /* the fixed columns */
    Buf chrom, pos0, end;         /* int32, int64, int64 */
    Col ref, alt, names, qual, filter, csq, orig, gt;
    Buf phased;                   /* bitmap */
    /* per record scratch */
    const uint8_t **info_ptr; int *info_type; int64_t *info_n;
    const uint8_t **fmt_ptr; int *fmt_type; int64_t *fmt_n;
    const uint8_t *gt_ptr; int gt_type; int64_t gt_n;
    const uint8_t *csq_ptr; int64_t csq_n; int csq_type;
    const uint8_t *orig_ptr; int64_t orig_n; int orig_type;
    /* the value above max_field: kind 0 = a fixed column (name), 1 = INFO field, 2 = FORMAT field */
    int oversized_kind, oversized_index, oversized_sample; const char *oversized_name; int64_t oversized_size;
    /* the multi-allelic split (csrc/split.h), when set_split() turned it on */
    int split, make_orig, n_contigs, allele_cap;
    int *info_num, *info_htype, *fmt_num, *fmt_htype;   /* dictionary id -> NUM_* / HT_* */
    char **contigs;
    int64_t nsplit;
    const char *refused;
    const char **allele_s; int64_t *allele_len;
    Buf scratch, gt_scratch, *fmt_scratch;
    const uint8_t **fmt_use_ptr; int64_t *fmt_use_n;
} Decoder;

static int decoder_reset_columns(Decoder *d) {
    int bad = 0;
    d->chrom.len = d->pos0.len = d->end.len = d->phased.len = 0;
    bad |= col_start(&d->ref, VT_STR, 0);
    bad |= col_start(&d->alt, VT_STR, 0);
    bad |= col_start(&d->names, VT_STR, 1);
    bad |= col_start(&d->qual, VT_FLOAT, 0);
    bad |= col_start(&d->filter, VT_INT, 1);
    bad |= col_start(&d->csq, VT_STR, 0);
    bad |= col_start(&d->orig, VT_STR, 0);
    bad |= col_start(&d->gt, VT_INT, 1);
    for (int i = 0; i < d->n_info; i++) bad |= col_start(&d->info[i].col, d->info[i].col.vtype, d->info[i].col.repeated);
    for (int i = 0; i < d->n_fmt; i++) bad |= col_start(&d->fmt[i].col, d->fmt[i].col.vtype, d->fmt[i].col.repeated);
    return bad ? -1 : 0;
}

static void Decoder_dealloc(Decoder *d) {
    free(d->s.in.p); free(d->s.raw.p);
    free(d->chrom.p); free(d->pos0.p); free(d->end.p); free(d->phased.p);
    col_free(&d->ref); col_free(&d->alt); col_free(&d->names); col_free(&d->qual);
    col_free(&d->filter); col_free(&d->csq); col_free(&d->orig); col_free(&d->gt);
    for (int i = 0; i < d->n_info; i++) col_free(&d->info[i].col);
    for (int i = 0; i < d->n_fmt; i++) col_free(&d->fmt[i].col);
    free(d->info); free(d->fmt); free(d->info_slot); free(d->fmt_slot);
    free(d->info_ptr); free(d->info_type); free(d->info_n);
    free(d->fmt_ptr); free(d->fmt_type); free(d->fmt_n);
    free(d->info_num); free(d->info_htype); free(d->fmt_num); free(d->fmt_htype);
    for (int i = 0; i < d->n_contigs; i++) free(d->contigs[i]);
    free(d->contigs); free(d->allele_s); free(d->allele_len);
    free(d->scratch.p); free(d->gt_scratch.p);
    if (d->fmt_scratch) for (int i = 0; i < d->n_fmt; i++) free(d->fmt_scratch[i].p);
    free(d->fmt_scratch); free(d->fmt_use_ptr); free(d->fmt_use_n);
    Py_TYPE(d)->tp_free((PyObject *)d);
}

static int Decoder_init(Decoder *d, PyObject *args, PyObject *kw) {
    int fd;
    if (!PyArg_ParseTuple(args, "i", &fd)) return -1;
    d->s.fd = fd;
    d->s.bgzf = -1;
    d->gt_id = d->csq_id = d->orig_id = -1;
    d->last_rid = -1;
    return 0;
}

/* header() -> bytes: the BCF header text (after the magic), read from the stream. */
static PyObject *Decoder_header(Decoder *d, PyObject *unused) {
    if (d->header_done) { PyErr_SetString(PyExc_RuntimeError, "header already read"); return NULL; }
    int r;
    Py_BEGIN_ALLOW_THREADS
    r = stream_need(&d->s, 9);
    Py_END_ALLOW_THREADS
    if (r < 0) return raise_pending();
    if (r == 0) {
        if (d->s.in.len - d->s.pos == 0) Py_RETURN_NONE;  /* nothing at all: the producer failed */
        PyErr_SetString(PyExc_ValueError, "the normalized stream ends inside the BCF header");
        return NULL;
    }
    const uint8_t *b = (const uint8_t *)d->s.in.p + d->s.pos;
    if (memcmp(b, "BCF\2", 4) != 0) {
        PyErr_SetString(PyExc_ValueError, "the normalized stream is not BCF version 2");
        return NULL;
    }
    uint32_t l_text;
    memcpy(&l_text, b + 5, 4);
    Py_BEGIN_ALLOW_THREADS
    r = stream_need(&d->s, 9 + (size_t)l_text);
    Py_END_ALLOW_THREADS
    if (r < 0) return raise_pending();
    if (r == 0) {
        PyErr_SetString(PyExc_ValueError, "the normalized stream ends inside the BCF header");
        return NULL;
    }
    const char *text = d->s.in.p + d->s.pos + 9;
    size_t len = l_text;
    while (len && text[len - 1] == 0) len--;
    PyObject *out = PyBytes_FromStringAndSize(text, (Py_ssize_t)len);
    d->s.pos += 9 + l_text;
    d->header_done = 1;
    return out;
}

static int parse_specs(PyObject *list, Field **out, int *count, int **slot, int dict_size) {
    Py_ssize_t n = PyList_Size(list);
    if (n < 0) return -1;
    *out = calloc((size_t)n + 1, sizeof(Field));
    *slot = malloc(sizeof(int) * (size_t)(dict_size + 1));
    if (!*out || !*slot) { PyErr_NoMemory(); return -1; }
    for (int i = 0; i <= dict_size; i++) (*slot)[i] = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        int id, vtype, repeated;
        if (!PyArg_ParseTuple(PyList_GetItem(list, i), "iii", &id, &vtype, &repeated)) return -1;
        if (id < 0 || id >= dict_size) return fail(ERR_VALUE, "dictionary id out of range");
        (*out)[i].id = id;
        (*out)[i].col.vtype = vtype;
        (*out)[i].col.repeated = repeated;
        (*slot)[id] = (int)i;
    }
    *count = (int)n;
    return 0;
}

/* configure(dict_size, n_samples, info_specs, format_specs, gt_id, csq_id, orig_id, max_field)
 * specs: [(dictionary id, VT_*, repeated)] in output order. */
static PyObject *Decoder_configure(Decoder *d, PyObject *args) {
    PyObject *info, *fmt;
    if (d->info || d->fmt) { PyErr_SetString(PyExc_RuntimeError, "already configured"); return NULL; }
    if (!PyArg_ParseTuple(args, "iiO!O!iiii", &d->dict_size, &d->n_samples, &PyList_Type, &info, &PyList_Type,
                          &fmt, &d->gt_id, &d->csq_id, &d->orig_id, &d->max_field))
        return NULL;
    if (parse_specs(info, &d->info, &d->n_info, &d->info_slot, d->dict_size) < 0) return NULL;
    if (parse_specs(fmt, &d->fmt, &d->n_fmt, &d->fmt_slot, d->dict_size) < 0) return NULL;
    d->info_ptr = calloc((size_t)d->n_info + 1, sizeof(*d->info_ptr));
    d->info_type = calloc((size_t)d->n_info + 1, sizeof(int));
    d->info_n = calloc((size_t)d->n_info + 1, sizeof(int64_t));
    d->fmt_ptr = calloc((size_t)d->n_fmt + 1, sizeof(*d->fmt_ptr));
    d->fmt_type = calloc((size_t)d->n_fmt + 1, sizeof(int));
    d->fmt_n = calloc((size_t)d->n_fmt + 1, sizeof(int64_t));
    d->fmt_scratch = calloc((size_t)d->n_fmt + 1, sizeof(Buf));
    d->fmt_use_ptr = calloc((size_t)d->n_fmt + 1, sizeof(*d->fmt_use_ptr));
    d->fmt_use_n = calloc((size_t)d->n_fmt + 1, sizeof(int64_t));
    if (!d->info_ptr || !d->info_type || !d->info_n || !d->fmt_ptr || !d->fmt_type || !d->fmt_n || !d->fmt_scratch ||
        !d->fmt_use_ptr || !d->fmt_use_n)
        return PyErr_NoMemory();
    if (decoder_reset_columns(d) < 0) return raise_pending();
    Py_RETURN_NONE;
}

static int int_list(PyObject *list, int size, int **out) {
    if (!PyList_Check(list) || PyList_Size(list) != size) {
        PyErr_SetString(PyExc_ValueError, "set_split: one value per dictionary id");
        return -1;
    }
    *out = calloc((size_t)size + 1, sizeof(int));
    if (!*out) { PyErr_NoMemory(); return -1; }
    for (int i = 0; i < size; i++) {
        long v = PyLong_AsLong(PyList_GetItem(list, i));
        if (v == -1 && PyErr_Occurred()) return -1;
        (*out)[i] = (int)v;
    }
    return 0;
}

/* set_split(info_number, info_type, format_number, format_type, contigs, make_orig): split
 * multi-allelic records as `bcftools norm -m -any` does (csrc/split.h). The four lists give, per
 * dictionary id, the header's Number (NUM_*) and Type (HT_*); contigs are the names by contig id
 * (for the --old-rec-tag text, written when make_orig). Call after configure(). */
static PyObject *Decoder_set_split(Decoder *d, PyObject *args) {
    PyObject *inum, *itype, *fnum, *ftype, *contigs;
    int make_orig;
    if (!d->info || d->split) { PyErr_SetString(PyExc_RuntimeError, "configure first, once"); return NULL; }
    if (!PyArg_ParseTuple(args, "OOOOO!p", &inum, &itype, &fnum, &ftype, &PyList_Type, &contigs, &make_orig))
        return NULL;
    if (int_list(inum, d->dict_size, &d->info_num) < 0 || int_list(itype, d->dict_size, &d->info_htype) < 0 ||
        int_list(fnum, d->dict_size, &d->fmt_num) < 0 || int_list(ftype, d->dict_size, &d->fmt_htype) < 0)
        return NULL;
    Py_ssize_t nc = PyList_Size(contigs);
    d->contigs = calloc((size_t)nc + 1, sizeof(char *));
    if (!d->contigs) return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < nc; i++) {
        const char *name = PyUnicode_AsUTF8(PyList_GetItem(contigs, i));
        if (!name) return NULL;
        d->contigs[i] = strdup(name);
        if (!d->contigs[i]) return PyErr_NoMemory();
        d->n_contigs = (int)i + 1;
    }
    d->make_orig = make_orig;
    d->split = 1;
    Py_RETURN_NONE;
}

/* A typed descriptor at *p (within [*, end)): type and count, advancing *p. 0 ok, -1 corrupt. */
static inline int typed_descriptor(const uint8_t **p, const uint8_t *end, int *type, int64_t *count) {
    if (*p >= end) return -1;
    uint8_t b = *(*p)++;
    *type = b & 15;
    *count = b >> 4;
    if (type_size(*type) < 0) return -1;
    if (*count == 15) {
        int t; int64_t one, v = 0; float f;
        if (typed_descriptor(p, end, &t, &one) < 0 || one != 1 || t < BT_INT8 || t > BT_INT32) return -1;
        int size = type_size(t);
        if (*p + size > end) return -1;
        if (element(t, *p, &v, &f) != 0 || v < 0) return -1;
        *p += size;
        *count = v;
    }
    return 0;
}

static int typed_int(const uint8_t **p, const uint8_t *end, int64_t *value) {
    int t; int64_t n; float f;
    if (typed_descriptor(p, end, &t, &n) < 0 || n != 1 || t < BT_INT8 || t > BT_INT32) return -1;
    int size = type_size(t);
    if (*p + size > end) return -1;
    if (element(t, *p, value, &f) != 0) return -1;
    *p += size;
    return 0;
}

static int check_size(Decoder *d, int kind, const char *name, int index, int sample, int64_t size) {
    if (size <= d->max_field) return 0;
    d->oversized_kind = kind;
    d->oversized_name = name;
    d->oversized_index = index;
    d->oversized_sample = sample;
    d->oversized_size = size;
    return -1;
}


#define CORRUPT(msg) return fail(ERR_VALUE, msg)

/* Emit ID (text s of len bytes): "." or empty is no name; else split on ';'. */
static int put_names(Decoder *d, const char *s, int64_t len) {
    if (len == 0 || (len == 1 && s[0] == '.')) return col_null(&d->names);
    int64_t start = 0;
    for (int64_t i = 0; i <= len; i++)
        if (i == len || s[i] == ';') {
            if (str_item(&d->names, s + start, (size_t)(i - start)) < 0) return -1;
            d->names.items++;
            start = i + 1;
        }
    return entry_end(&d->names, 1);
}

/* Decode one record into the columns: one row, or with split on one row per ALT of a
 * multi-allelic record (csrc/split.h). Rows emitted (>= 1), 0 clean end of stream, -1 error,
 * -2 oversized, -3 a record the split refuses. */
static int decode_record(Decoder *d) {
    int r = stream_need(&d->s, 8);
    if (r < 0) return -1;
    if (r == 0) {
        if (d->s.in.len - d->s.pos) CORRUPT("the normalized stream ends inside a record");
        return 0;
    }
    uint32_t l_shared, l_indiv;
    memcpy(&l_shared, d->s.in.p + d->s.pos, 4);
    memcpy(&l_indiv, d->s.in.p + d->s.pos + 4, 4);
    if (l_shared < 24) CORRUPT("corrupt BCF record (shared part too short)");
    r = stream_need(&d->s, 8 + (size_t)l_shared + l_indiv);
    if (r < 0) return -1;
    if (r == 0) CORRUPT("the normalized stream ends inside a record");
    const uint8_t *p = (const uint8_t *)d->s.in.p + d->s.pos + 8;
    const uint8_t *end = p + l_shared, *indiv_end = end + l_indiv;
    d->s.pos += 8 + (size_t)l_shared + l_indiv;

    int32_t rid, pos, rlen;
    float qual;
    uint32_t n_allele_info, n_fmt_sample;
    memcpy(&rid, p, 4); memcpy(&pos, p + 4, 4); memcpy(&rlen, p + 8, 4); memcpy(&qual, p + 12, 4);
    memcpy(&n_allele_info, p + 16, 4); memcpy(&n_fmt_sample, p + 20, 4);
    p += 24;
    int n_info = (int)(n_allele_info & 0xFFFF), n_allele = (int)(n_allele_info >> 16);
    int n_fmt = (int)(n_fmt_sample >> 24), n_sample = (int)(n_fmt_sample & 0xFFFFFF);
    if (n_sample != d->n_samples && n_fmt) CORRUPT("BCF record with another number of samples than its header");
    if (d->split && rid == d->last_rid && pos < d->last_pos) {
        d->refused = "a record before its predecessor on the same contig (norm re-sorts those)";
        return -3;
    }
    d->last_rid = rid;
    d->last_pos = pos;
    int split = d->split && n_allele > 2;

    /* ---- parse ---- */
    int type; int64_t n;
    if (typed_descriptor(&p, end, &type, &n) < 0 || p + n * type_size(type) > end) CORRUPT("corrupt BCF record (ID)");
    const char *id_s = (const char *)p;
    int64_t id_len = text_length(type, n, p);
    if (check_size(d, 0, "ID", -1, -1, id_len) < 0) return -2;
    p += n * type_size(type);
    if (n_allele > d->allele_cap) {
        int cap = n_allele * 2;
        const char **s2 = realloc(d->allele_s, sizeof(*s2) * (size_t)cap);
        if (!s2) return fail(ERR_MEMORY, NULL);
        d->allele_s = s2;
        int64_t *l2 = realloc(d->allele_len, sizeof(*l2) * (size_t)cap);
        if (!l2) return fail(ERR_MEMORY, NULL);
        d->allele_len = l2;
        d->allele_cap = cap;
    }
    for (int a = 0; a < n_allele; a++) {
        if (typed_descriptor(&p, end, &type, &n) < 0 || p + n * type_size(type) > end) CORRUPT("corrupt BCF record (alleles)");
        d->allele_s[a] = (const char *)p;
        d->allele_len[a] = text_length(type, n, p);
        p += n * type_size(type);
    }
    if (n_allele > 0 && check_size(d, 0, "REF", -1, -1, d->allele_len[0]) < 0) return -2;
    const uint8_t *flt_p; int flt_type; int64_t flt_n;
    if (typed_descriptor(&p, end, &flt_type, &flt_n) < 0 || p + flt_n * type_size(flt_type) > end)
        CORRUPT("corrupt BCF record (FILTER)");
    flt_p = p;
    p += flt_n * type_size(flt_type);
    for (int i = 0; i < d->n_info; i++) d->info_ptr[i] = NULL;
    d->csq_ptr = d->orig_ptr = NULL;
    for (int k = 0; k < n_info; k++) {
        int64_t key;
        if (typed_int(&p, end, &key) < 0 || key < 0 || key >= d->dict_size) CORRUPT("corrupt BCF record (INFO key)");
        if (typed_descriptor(&p, end, &type, &n) < 0 || p + n * type_size(type) > end) CORRUPT("corrupt BCF record (INFO value)");
        if (split && !info_splittable(d->info_num[key], d->info_htype[key], type, n, p, n_allele)) {
            d->refused = "an INFO value norm would not split as its header declares";
            return -3;
        }
        int slot = d->info_slot[key];
        if (slot >= 0) { d->info_ptr[slot] = p; d->info_type[slot] = type; d->info_n[slot] = n; }
        else if (key == d->csq_id) { d->csq_ptr = p; d->csq_type = type; d->csq_n = n; }
        else if (key == d->orig_id) { d->orig_ptr = p; d->orig_type = type; d->orig_n = n; }
        p += n * type_size(type);
    }
    for (int i = 0; i < d->n_info; i++)
        if (d->info_ptr[i] && check_size(d, 1, NULL, i, -1, text_length(d->info_type[i], d->info_n[i], d->info_ptr[i])) < 0)
            return -2;
    if (d->csq_id >= 0 && d->csq_ptr && check_size(d, 0, "INFO/CSQ", -1, -1, text_length(d->csq_type, d->csq_n, d->csq_ptr)) < 0)
        return -2;
    for (int i = 0; i < d->n_fmt; i++) d->fmt_ptr[i] = NULL;
    d->gt_ptr = NULL;
    p = end;
    for (int k = 0; k < n_fmt; k++) {
        int64_t key;
        if (typed_int(&p, indiv_end, &key) < 0 || key < 0 || key >= d->dict_size) CORRUPT("corrupt BCF record (FORMAT key)");
        if (typed_descriptor(&p, indiv_end, &type, &n) < 0) CORRUPT("corrupt BCF record (FORMAT value)");
        int64_t total = n * type_size(type) * (int64_t)n_sample;
        if (p + total > indiv_end) CORRUPT("corrupt BCF record (FORMAT values)");
        if (split) {
            int ok = key == d->gt_id ? (type >= BT_INT8 && type <= BT_INT32)
                                     : fmt_splittable(d->fmt_num[key], d->fmt_htype[key], type, n, n_allele);
            if (!ok) { d->refused = "a FORMAT value norm would not split as its header declares"; return -3; }
        }
        int slot = d->fmt_slot[key];
        if (slot >= 0) { d->fmt_ptr[slot] = p; d->fmt_type[slot] = type; d->fmt_n[slot] = n; }
        else if (key == d->gt_id) { d->gt_ptr = p; d->gt_type = type; d->gt_n = n; }
        p += total;
    }
    if (split) d->nsplit++;

    /* ---- emit: one row, or one per ALT ---- */
    int rows = split ? n_allele - 1 : 1;
    for (int ialt = 1; ialt <= rows; ialt++) {
        int64_t row = (int64_t)(d->chrom.len / 4);
        BUF_PUT_T(&d->chrom, int32_t, rid);
        BUF_PUT_T(&d->pos0, int64_t, pos);
        BUF_PUT_T(&d->end, int64_t, (int64_t)pos + rlen);
        /* QUAL: missing prints "." */
        uint32_t qbits;
        memcpy(&qbits, &qual, 4);
        if (qbits == 0x7F800001u) { if (col_null(&d->qual) < 0) return -1; }
        else { BUF_PUT_T(&d->qual.vals, double, printed_float(qual)); if (entry_end(&d->qual, 1) < 0) return -1; }
        if (put_names(d, id_s, id_len) < 0) return -1;
        /* alleles: REF, then ALT joined by ',' ("." when none) */
        if (n_allele == 0) { if (col_null(&d->ref) < 0) return -1; }
        else {
            const char *s = d->allele_s[0];
            int64_t len = d->allele_len[0];
            if (len == 1 && s[0] == '.') { if (col_null(&d->ref) < 0) return -1; }
            else { if (str_item(&d->ref, s, (size_t)len) < 0 || entry_end(&d->ref, 1) < 0) return -1; }
        }
        int first = split ? ialt : 1, last = split ? ialt : n_allele - 1;
        int n_alt = split ? 1 : n_allele - 1;
        if (n_alt <= 0) { if (col_null(&d->alt) < 0) return -1; }
        else if (n_alt == 1 && d->allele_len[first] == 1 && d->allele_s[first][0] == '.') {
            if (col_null(&d->alt) < 0) return -1;
        } else {
            int32_t start;
            memcpy(&start, d->alt.soffs.p + d->alt.soffs.len - 4, 4);
            for (int a = first; a <= last; a++) {
                if (a > first) {  /* several ALT alleles (not split): one comma-joined value, as query prints */
                    d->alt.soffs.len -= 4;
                    if (buf_put(&d->alt.data, ",", 1) < 0) return -1;
                }
                if (str_item(&d->alt, d->allele_s[a], (size_t)d->allele_len[a]) < 0) return -1;
                int32_t now;
                memcpy(&now, d->alt.soffs.p + d->alt.soffs.len - 4, 4);
                if (check_size(d, 0, "ALT", -1, -1, now - start) < 0) return -2;
            }
            if (entry_end(&d->alt, 1) < 0) return -1;
        }
        /* FILTER: dictionary ids; none prints "." */
        if (flt_n == 0 || flt_type == BT_NULL) { if (col_null(&d->filter) < 0) return -1; }
        else {
            int size = type_size(flt_type);
            int64_t count = 0, v; float f;
            for (int64_t j = 0; j < flt_n; j++) {
                int kind = element(flt_type, flt_p + j * size, &v, &f);
                if (kind == 2) break;
                if (kind != 0 || flt_type == BT_FLOAT || flt_type == BT_CHAR || v < 0 || v >= d->dict_size)
                    CORRUPT("corrupt BCF record (FILTER id)");
                BUF_PUT_T(&d->filter.vals, int64_t, v);
                count++;
            }
            d->filter.items += count;
            if (entry_end(&d->filter, 1) < 0) return -1;
        }
        /* INFO */
        for (int i = 0; i < d->n_info; i++) {
            const uint8_t *vp = d->info_ptr[i];
            int64_t vn = d->info_n[i];
            int num = split && vp ? d->info_num[d->info[i].id] : NUM_OTHER;
            if (num != NUM_OTHER) {
                vn = info_subset(num, d->info_type[i], vn, vp, ialt, &d->scratch);
                if (vn < 0) return -1;
                vp = (const uint8_t *)d->scratch.p;
            }
            if (put_value(&d->info[i].col, vp != NULL, d->info_type[i], vn, vp, 1) < 0) return -1;
        }
        if (d->csq_id >= 0 && put_value(&d->csq, d->csq_ptr != NULL, d->csq_type, d->csq_n, d->csq_ptr, 1) < 0)
            return -1;
        if (d->make_orig) {  /* norm's --old-rec-tag on split records: CHROM|POS|REF|ALT,ALT|index */
            if (!split) { if (col_null(&d->orig) < 0) return -1; }
            else {
                Buf *t = &d->scratch;
                char num[32];
                t->len = 0;
                const char *chrom = rid >= 0 && rid < d->n_contigs ? d->contigs[rid] : "";
                if (buf_put(t, chrom, strlen(chrom)) < 0) return -1;
                int w = snprintf(num, sizeof num, "|%lld|", (long long)pos + 1);
                if (buf_put(t, num, (size_t)w) < 0 || buf_put(t, d->allele_s[0], (size_t)d->allele_len[0]) < 0 ||
                    buf_put(t, "|", 1) < 0)
                    return -1;
                for (int a = 1; a < n_allele; a++)
                    if ((a > 1 && buf_put(t, ",", 1) < 0) || buf_put(t, d->allele_s[a], (size_t)d->allele_len[a]) < 0)
                        return -1;
                w = snprintf(num, sizeof num, "|%d", ialt);
                if (buf_put(t, num, (size_t)w) < 0) return -1;
                if (str_item(&d->orig, t->p, t->len) < 0 || entry_end(&d->orig, 1) < 0) return -1;
            }
        } else if (d->orig_id >= 0 && put_value(&d->orig, d->orig_ptr != NULL, d->orig_type, d->orig_n, d->orig_ptr, 1) < 0)
            return -1;
        /* FORMAT: the split values of every field first, then sample by sample */
        const uint8_t *gt_p = d->gt_ptr;
        int gt_type = d->gt_type;
        if (split && gt_p && gt_type != BT_NULL) {
            int g = gt_subset(gt_type, d->gt_n, gt_p, d->n_samples, ialt, &d->gt_scratch);
            if (g < 0) return -1;
            if (g > 0) { d->refused = "a genotype holding the integer missing value"; return -3; }
            gt_p = (const uint8_t *)d->gt_scratch.p;
            gt_type = BT_INT32;
        }
        for (int i = 0; i < d->n_fmt; i++) {
            d->fmt_use_ptr[i] = d->fmt_ptr[i];
            d->fmt_use_n[i] = d->fmt_n[i];
            int num = split && d->fmt_ptr[i] ? d->fmt_num[d->fmt[i].id] : NUM_OTHER;
            if (num != NUM_OTHER) {
                int64_t w = fmt_subset(num, d->fmt_type[i], d->fmt_n[i], d->fmt_ptr[i], d->n_samples, n_allele, ialt,
                                       &d->fmt_scratch[i]);
                if (w < 0) return -1;
                d->fmt_use_ptr[i] = (const uint8_t *)d->fmt_scratch[i].p;
                d->fmt_use_n[i] = w;
            }
        }
        for (int s = 0; s < d->n_samples; s++) {
            /* GT: alleles until the end of the vector; "." (0) is -1; phased when a separator is '|' */
            int64_t count = 0;
            int phased = 0;
            if (gt_p && gt_type != BT_NULL && gt_type != BT_FLOAT && gt_type != BT_CHAR) {
                int size = type_size(gt_type);
                const uint8_t *g = gt_p + (int64_t)s * d->gt_n * size;
                for (int64_t j = 0; j < d->gt_n; j++) {
                    int64_t v = 0;
                    if (gt_type == BT_INT8) v = (int8_t)g[j];
                    else if (gt_type == BT_INT16) { int16_t x; memcpy(&x, g + j * 2, 2); v = x; }
                    else { int32_t x; memcpy(&x, g + j * 4, 4); v = x; }
                    int64_t vend = gt_type == BT_INT8 ? INT8_MIN + 1 : gt_type == BT_INT16 ? INT16_MIN + 1 : (int64_t)INT32_MIN + 1;
                    if (v == vend) break;
                    if (j && (v & 1)) phased = 1;
                    BUF_PUT_T(&d->gt.vals, int64_t, (v >> 1) ? (v >> 1) - 1 : -1);
                    count++;
                }
            }
            if (count == 0) { BUF_PUT_T(&d->gt.vals, int64_t, -1); count = 1; }
            d->gt.items += count;
            if (entry_end(&d->gt, 1) < 0) return -1;
            if (bit_put(&d->phased, row * d->n_samples + s, phased) < 0) return -1;
            for (int i = 0; i < d->n_fmt; i++) {
                const uint8_t *v = NULL;
                if (d->fmt_use_ptr[i]) {
                    v = d->fmt_use_ptr[i] + (int64_t)s * d->fmt_use_n[i] * type_size(d->fmt_type[i]);
                    if (check_size(d, 2, NULL, i, s, text_length(d->fmt_type[i], d->fmt_use_n[i], v)) < 0) return -2;
                }
                if (put_value(&d->fmt[i].col, v != NULL, d->fmt_type[i], d->fmt_use_n[i], v, 0) < 0) return -1;
            }
        }
    }
    d->records++;
    return rows;
}

static PyObject *bytes_of(Buf *b) { return PyBytes_FromStringAndSize(b->p ? b->p : "", (Py_ssize_t)b->len); }

/* (n, nulls, validity, offsets, values, string_offsets, data) of one column */
static PyObject *col_tuple(Col *c) {
    return Py_BuildValue("(LLNNNNN)", (long long)c->n, (long long)c->nulls, bytes_of(&c->valid),
                         bytes_of(&c->offs), bytes_of(&c->vals), bytes_of(&c->soffs), bytes_of(&c->data));
}

/* read(max_rows, max_bytes) -> None at the end, or a dict of column tuples. Raises ValueError on a
 * corrupt stream, and ValueError("oversized", field, size, row, sample) on a value above the limit. */
static PyObject *Decoder_read(Decoder *d, PyObject *args) {
    Py_ssize_t max_rows, max_bytes;
    if (!PyArg_ParseTuple(args, "nn", &max_rows, &max_bytes)) return NULL;
    if (!d->header_done || !d->info) { PyErr_SetString(PyExc_RuntimeError, "read header and configure first"); return NULL; }
    if (decoder_reset_columns(d) < 0) return raise_pending();
    Py_ssize_t rows = 0;
    size_t consumed = 0;
    int r = 1;
    Py_BEGIN_ALLOW_THREADS
    while (rows < max_rows && consumed < (size_t)max_bytes) {
        size_t before = d->s.pos;
        r = decode_record(d);
        if (r <= 0) break;
        rows += r;
        consumed += d->s.pos >= before ? d->s.pos - before : 0;
    }
    Py_END_ALLOW_THREADS
    if (r == -2) {
        PyObject *exc = Py_BuildValue("(sizinLn)", "oversized", d->oversized_kind, d->oversized_name,
                                      d->oversized_index, d->oversized_sample, (long long)d->oversized_size, rows);
        PyErr_SetObject(PyExc_ValueError, exc);
        Py_XDECREF(exc);
        return NULL;
    }
    if (r == -3) {
        PyObject *exc = Py_BuildValue("(ss)", "refused", d->refused ? d->refused : "");
        PyErr_SetObject(PyExc_ValueError, exc);
        Py_XDECREF(exc);
        return NULL;
    }
    if (r < 0) return raise_pending();
    if (rows == 0) Py_RETURN_NONE;
    PyObject *info = PyList_New(d->n_info), *fmt = PyList_New(d->n_fmt);
    if (!info || !fmt) return NULL;
    for (int i = 0; i < d->n_info; i++) PyList_SET_ITEM(info, i, col_tuple(&d->info[i].col));
    for (int i = 0; i < d->n_fmt; i++) PyList_SET_ITEM(fmt, i, col_tuple(&d->fmt[i].col));
    return Py_BuildValue("{s:n,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N,s:N}",
                         "rows", rows, "chrom", bytes_of(&d->chrom), "pos0", bytes_of(&d->pos0),
                         "end", bytes_of(&d->end), "ref", col_tuple(&d->ref), "alt", col_tuple(&d->alt),
                         "names", col_tuple(&d->names), "qual", col_tuple(&d->qual),
                         "filter", col_tuple(&d->filter), "csq", col_tuple(&d->csq), "orig", col_tuple(&d->orig),
                         "gt", col_tuple(&d->gt), "phased", bytes_of(&d->phased), "info", info, "format", fmt);
}

/* where() -> (records decoded, contig id of the last record or -1, its 0-based position) */
static PyObject *Decoder_where(Decoder *d, PyObject *unused) {
    return Py_BuildValue("(Lii)", (long long)d->records, d->last_rid, d->last_pos);
}

/* counts() -> (records read, records split) */
static PyObject *Decoder_counts(Decoder *d, PyObject *unused) {
    return Py_BuildValue("(LL)", (long long)d->records, (long long)d->nsplit);
}

static PyObject *fn_printed_float(PyObject *self, PyObject *arg) {
    double v = PyFloat_AsDouble(arg);
    if (v == -1.0 && PyErr_Occurred()) return NULL;
    return PyFloat_FromDouble(printed_float((float)v));
}

static PyMethodDef Decoder_methods[] = {
    {"header", (PyCFunction)Decoder_header, METH_NOARGS, "Read the BCF header; its text (bytes), or None for an empty stream."},
    {"configure", (PyCFunction)Decoder_configure, METH_VARARGS, "Say which fields to decode and how."},
    {"read", (PyCFunction)Decoder_read, METH_VARARGS, "Decode up to max_rows records into column buffers."},
    {"set_split", (PyCFunction)Decoder_set_split, METH_VARARGS, "Split multi-allelic records as bcftools norm -m -any does."},
    {"counts", (PyCFunction)Decoder_counts, METH_NOARGS, "Records read and records split."},
    {"where", (PyCFunction)Decoder_where, METH_NOARGS, "Records decoded and the last one's contig id and position."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject DecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sovaudit.pipeline._bcfarrow.Decoder",
    .tp_basicsize = sizeof(Decoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Decoder(fd): uncompressed BCF2 records from a file descriptor into column buffers.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Decoder_init,
    .tp_dealloc = (destructor)Decoder_dealloc,
    .tp_methods = Decoder_methods,
};

static PyMethodDef module_methods[] = {
    {"printed_float", fn_printed_float, METH_O, "The double bcftools query's text of this float32 reads back as."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_bcfarrow", .m_doc = "BCF2 stream -> column buffers.", .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__bcfarrow(void) {
    if (PyType_Ready(&DecoderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&DecoderType);
    if (PyModule_AddObject(m, "Decoder", (PyObject *)&DecoderType) < 0) { Py_DECREF(&DecoderType); Py_DECREF(m); return NULL; }
    PyModule_AddIntConstant(m, "VT_INT", VT_INT);
    PyModule_AddIntConstant(m, "VT_FLOAT", VT_FLOAT);
    PyModule_AddIntConstant(m, "VT_STR", VT_STR);
    PyModule_AddIntConstant(m, "VT_FLAG", VT_FLAG);
    PyModule_AddIntConstant(m, "NUM_A", NUM_A);
    PyModule_AddIntConstant(m, "NUM_R", NUM_R);
    PyModule_AddIntConstant(m, "NUM_G", NUM_G);
    PyModule_AddIntConstant(m, "HT_FLAG", HT_FLAG);
    PyModule_AddIntConstant(m, "HT_INT", HT_INT);
    PyModule_AddIntConstant(m, "HT_FLOAT", HT_FLOAT);
    PyModule_AddIntConstant(m, "HT_STR", HT_STR);
    return m;
}
