/* The multi-allelic split of `bcftools norm -m -any`, done on the decoded record (part of
 * _bcfarrow.c; included once, by it).
 *
 * Why: the task used to pipe its input through `bcftools norm -m -any -Ou`, which costs about as
 * much CPU as the whole baseline step; `bcftools view -Ou` (parse and encode, no split) costs
 * half of it. With `split` on, the decoder reads view's stream and emits one row per ALT allele
 * with the values norm would have written (pysam's bcftools, checked record by record by
 * tests/pipeline/test_native_split.py):
 *   - INFO Number=A: the ALT's value; R: REF's and the ALT's; G: the genotypes 0/0, 0/a, a/a;
 *     a String with Number=A/R: the same items of its comma-separated text;
 *   - FORMAT Number=A: the ALT's value (missing or past the end: missing); R: REF's, then the
 *     ALT's (past the end: missing); G: diploid 0/0, 0/a, a/a, or REF's and the ALT's for a
 *     haploid sample (a vector shorter than the diploid count, or all samples at n_allele values);
 *     one value per sample (all missing) is copied;
 *   - GT: the ALT becomes 1, REF and missing alleles stay, the other ALTs become REF (0),
 *     phasing kept (`--multi-overlaps 0`, norm's default);
 *   - everything else (ID, QUAL, FILTER, Number=1/./n, strings, flags) is copied, and
 *     `--old-rec-tag` is CHROM|POS|REF|ALT,ALT|index.
 * What it does not reproduce it refuses (-3, "refused"): in a multi-allelic record, a FORMAT String
 * with Number=A/R/G or an INFO String with Number=G, a Number=A/R/G value with another count than the alleles ask for (norm
 * stops with an error there), a value whose BCF type is not the header's, and a record before
 * its predecessor on the same contig (norm re-sorts within a window). The caller then runs the
 * task again through norm, so the output never depends on a guess. */
#ifndef BCFARROW_SPLIT_H
#define BCFARROW_SPLIT_H

enum { NUM_OTHER = 0, NUM_A = 1, NUM_R = 2, NUM_G = 3 };
enum { HT_UNKNOWN = 0, HT_FLAG = 1, HT_INT = 2, HT_FLOAT = 3, HT_STR = 4 };

static inline int gt_index(int a, int b) { return a > b ? a * (a + 1) / 2 + b : b * (b + 1) / 2 + a; }

static inline int is_vector_end(int type, const uint8_t *p) {
    int64_t iv; float fv;
    return element(type, p, &iv, &fv) == 2;
}

static inline int is_missing_value(int type, const uint8_t *p) {
    int64_t iv; float fv;
    return element(type, p, &iv, &fv) == 1;
}

/* Write the missing value of `type` at q. */
static inline void set_missing(int type, uint8_t *q) {
    switch (type) {
    case BT_INT8: q[0] = 0x80; break;
    case BT_INT16: { int16_t v = INT16_MIN; memcpy(q, &v, 2); break; }
    case BT_INT32: { int32_t v = INT32_MIN; memcpy(q, &v, 4); break; }
    case BT_FLOAT: { uint32_t u = 0x7F800001u; memcpy(q, &u, 4); break; }
    default: break;
    }
}

static inline void set_vector_end(int type, uint8_t *q) {
    switch (type) {
    case BT_INT8: q[0] = 0x81; break;
    case BT_INT16: { int16_t v = INT16_MIN + 1; memcpy(q, &v, 2); break; }
    case BT_INT32: { int32_t v = INT32_MIN + 1; memcpy(q, &v, 4); break; }
    case BT_FLOAT: { uint32_t u = 0x7F800002u; memcpy(q, &u, 4); break; }
    default: break;
    }
}

/* Does a value's BCF type agree with the header's Type? */
static inline int type_agrees(int htype, int type) {
    if (type == BT_NULL) return 1;
    if (htype == HT_INT) return type >= BT_INT8 && type <= BT_INT32;
    if (htype == HT_FLOAT) return type == BT_FLOAT;
    return 0;
}

/* Values before the end-of-vector mark (what htslib's bcf_get_info_* returns). */
static inline int64_t count_before_end(int type, int64_t n, const uint8_t *p) {
    int size = type_size(type);
    int64_t j = 0;
    while (j < n && !is_vector_end(type, p + j * size)) j++;
    return j;
}

/* Can norm split this INFO value (key's Number and Type from the header) at n_allele alleles?
 * 1 yes (or nothing to do), 0 refused. */
static int info_splittable(int num, int htype, int type, int64_t n, const uint8_t *p, int n_allele) {
    if (num == NUM_OTHER) return 1;
    if (htype == HT_STR && type == BT_CHAR && (num == NUM_A || num == NUM_R)) {
        /* one comma-separated item per ALT (A) or allele (R), exactly; norm drops the key otherwise */
        int64_t len = text_length(type, n, p), fields = 1;
        for (int64_t i = 0; i < len; i++) fields += p[i] == ',';
        return fields == (num == NUM_A ? n_allele - 1 : n_allele);
    }
    if (htype != HT_INT && htype != HT_FLOAT) return 0;
    if (!type_agrees(htype, type) || type == BT_NULL) return 0;
    int64_t ret = count_before_end(type, n, p);
    int64_t want = num == NUM_A ? n_allele - 1 : num == NUM_R ? n_allele : (int64_t)n_allele * (n_allele + 1) / 2;
    return ret == want;
}

/* Item k of a comma-separated text of len bytes: its start and length. */
static void text_item(const uint8_t *p, int64_t len, int k, int64_t *start, int64_t *item_len) {
    int64_t i = 0;
    for (int j = 0; j < k; j++) { while (i < len && p[i] != ',') i++; i++; }
    int64_t e = i;
    while (e < len && p[e] != ',') e++;
    *start = i;
    *item_len = e - i;
}

/* The INFO value for ALT ialt (1-based) into out (same BCF type); returns the value count. */
static int64_t info_subset(int num, int type, int64_t n, const uint8_t *p, int ialt, Buf *out) {
    int size = type_size(type);
    if (type == BT_CHAR) {  /* a String, Number=A: the ALT's item; R: REF's item, ',', the ALT's */
        int64_t len = text_length(type, n, p), start, item;
        out->len = 0;
        if (num == NUM_R) {
            text_item(p, len, 0, &start, &item);
            if (buf_put(out, p + start, (size_t)item) < 0 || buf_put(out, ",", 1) < 0) return -1;
        }
        text_item(p, len, num == NUM_R ? ialt : ialt - 1, &start, &item);
        if (buf_put(out, p + start, (size_t)item) < 0) return -1;
        return (int64_t)out->len;
    }
    int idx[3], k = 0;
    if (num == NUM_A) idx[k++] = ialt - 1;
    else if (num == NUM_R) { idx[k++] = 0; idx[k++] = ialt; }
    else { idx[k++] = 0; idx[k++] = gt_index(0, ialt); idx[k++] = gt_index(ialt, ialt); }
    out->len = 0;
    if (buf_reserve(out, (size_t)(3 * size)) < 0) return -1;
    for (int j = 0; j < k; j++) memcpy(out->p + j * size, p + (int64_t)idx[j] * size, (size_t)size);
    out->len = (size_t)(k * size);
    return k;
}

/* Can norm split this FORMAT value (per-sample width n)? 1 yes, 0 refused. */
static int fmt_splittable(int num, int htype, int type, int64_t n, int n_allele) {
    if (num == NUM_OTHER) return 1;
    if (htype != HT_INT && htype != HT_FLOAT) return 0;
    if (!type_agrees(htype, type) || type == BT_NULL) return 0;
    if (n == 1) return 1;  /* one value per sample: norm copies it */
    if (num == NUM_A) return n == n_allele - 1;
    if (num == NUM_R) return n == n_allele;
    return n == (int64_t)n_allele * (n_allele + 1) / 2 || n == n_allele;
}

/* The FORMAT values of all samples for ALT ialt (1-based) into out; returns the new width. */
static int64_t fmt_subset(int num, int type, int64_t n, const uint8_t *p, int n_samples, int n_allele, int ialt,
                          Buf *out) {
    int size = type_size(type);
    if (n == 1) {  /* copied */
        out->len = 0;
        if (buf_put(out, p, (size_t)n_samples * (size_t)size) < 0) return -1;
        return 1;
    }
    int width = num == NUM_A ? 1 : num == NUM_R ? 2 : (n == n_allele ? 2 : 3);
    out->len = 0;
    if (buf_reserve(out, (size_t)n_samples * (size_t)width * (size_t)size) < 0) return -1;
    uint8_t *q = (uint8_t *)out->p;
    for (int s = 0; s < n_samples; s++, q += width * size) {
        const uint8_t *v = p + (int64_t)s * n * size;
        if (num == NUM_A) {
            const uint8_t *x = v + (int64_t)(ialt - 1) * size;
            if (is_missing_value(type, x) || is_vector_end(type, x)) set_missing(type, q);
            else memcpy(q, x, (size_t)size);
        } else if (num == NUM_R) {
            memcpy(q, v, (size_t)size);
            const uint8_t *x = v + (int64_t)ialt * size;
            if (is_vector_end(type, x)) set_missing(type, q + size);
            else memcpy(q + size, x, (size_t)size);
        } else {
            int haploid = width == 2;
            if (!haploid)
                for (int64_t j = 0; j < n; j++)
                    if (is_vector_end(type, v + j * size)) { haploid = 1; break; }
            memcpy(q, v, (size_t)size);
            if (haploid) {
                memcpy(q + size, v + (int64_t)ialt * size, (size_t)size);
                if (width == 3) set_vector_end(type, q + 2 * size);
            } else {
                memcpy(q + size, v + (int64_t)gt_index(0, ialt) * size, (size_t)size);
                memcpy(q + 2 * size, v + (int64_t)gt_index(ialt, ialt) * size, (size_t)size);
            }
        }
    }
    out->len = (size_t)n_samples * (size_t)width * (size_t)size;
    return width;
}

/* GT of all samples for ALT ialt (1-based), as int32 BCF genotype values. 0 ok, -1 error, 1 refused
 * (an integer-missing sentinel where an allele should be: htslib's reading of it is not ours). */
static int gt_subset(int type, int64_t n, const uint8_t *p, int n_samples, int ialt, Buf *out) {
    int size = type_size(type);
    out->len = 0;
    if (buf_reserve(out, (size_t)n_samples * (size_t)n * 4) < 0) return -1;
    int32_t *q = (int32_t *)out->p;
    for (int s = 0; s < n_samples; s++) {
        const uint8_t *g = p + (int64_t)s * n * size;
        int ended = 0;
        for (int64_t j = 0; j < n; j++) {
            int64_t v;
            if (type == BT_INT8) v = (int8_t)g[j];
            else if (type == BT_INT16) { int16_t x; memcpy(&x, g + j * 2, 2); v = x; }
            else { int32_t x; memcpy(&x, g + j * 4, 4); v = x; }
            int64_t vend = type == BT_INT8 ? INT8_MIN + 1 : type == BT_INT16 ? INT16_MIN + 1 : (int64_t)INT32_MIN + 1;
            int32_t w;
            if (ended || v == vend) { ended = 1; w = INT32_MIN + 1; }
            else {
                if (v < 0) return 1;
                int64_t allele = (v >> 1) - 1, phase = v & 1;
                if (allele < 0 || allele == 0) w = (int32_t)v;           /* missing or REF: as is */
                else if (allele == ialt) w = (int32_t)((2 << 1) | phase);  /* this ALT: 1 */
                else w = (int32_t)((1 << 1) | phase);                     /* another ALT: REF */
            }
            q[s * n + j] = w;
        }
    }
    out->len = (size_t)n_samples * (size_t)n * 4;
    return 0;
}

#endif
