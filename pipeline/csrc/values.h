/* BCF typed values and the text path's rules for turning them into column values (part of _bcfarrow.c; included once, by it). */
#ifndef BCFARROW_VALUES_H
#define BCFARROW_VALUES_H

/* ---- how bcftools query prints a float ---------------------------------------------------- */

static double printed_slow(double d) {
    char text[64];
    snprintf(text, sizeof text, "%g", d);
    return strtod(text, NULL);
}

/* The double that reading back `bcftools query`'s text of the float f gives. pysam's htslib
 * prints floats as printf's "%g" does: 6 significant digits, rounded half to even from the exact
 * binary value. That rounding is done here without text: s = |f| scaled to 6 integral digits (exact
 * in long double when scaling up: a 24-bit float times 10^k, k <= 17, fits 64 bits), rounded to
 * an integer, then one correctly rounded division or multiplication by an exact power of ten,
 * which is the double a correct decimal parser (Arrow's) returns for the printed text. Whenever
 * the scaled value might sit on a rounding tie it could have missed, or is out of that range,
 * the text route (snprintf + strtod) decides. */
static double printed_float(float f) {
    double d = (double)f;
    if (d == 0 || isnan(d) || isinf(d)) return d;
    int negative = d < 0;
    long double x = negative ? -(long double)d : (long double)d;
    static const long double tens[] = {1e0L, 1e1L, 1e2L, 1e3L, 1e4L, 1e5L, 1e6L, 1e7L, 1e8L, 1e9L, 1e10L,
                                       1e11L, 1e12L, 1e13L, 1e14L, 1e15L, 1e16L, 1e17L};
    /* the decimal exponent e (10^e <= x < 10^(e+1)) by comparison; an estimate off by one at a
     * power of ten is corrected below, where s must land in [1e5, 1e6) */
    static const double limits[] = {1e5, 1e4, 1e3, 1e2, 1e1, 1e0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6,
                                    1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12};
    double ad = negative ? -d : d;
    if (ad >= 1e6 || ad < 1e-12) return printed_slow(d);
    int e = 5, k = 0;
    while (k < 17 && ad < limits[k]) { k++; e--; }
    if (5 - e > 17) return printed_slow(d);
    long double s = x * tens[5 - e];
    if (s < 1e5L) {
        if (5 - e + 1 > 17) return printed_slow(d);
        e -= 1;
        s = x * tens[5 - e];
    } else if (s >= 1e6L) {
        if (e + 1 > 5) return printed_slow(d);
        e += 1;
        s = x * tens[5 - e];
    }
    uint64_t whole = (uint64_t)s;
    long double frac = s - (long double)whole;
    if (frac > 0.4999999L && frac < 0.5000001L) return printed_slow(d);
    long double r = (long double)(frac < 0.5L ? whole : whole + 1);
    double result = (double)r / (double)tens[5 - e];
    return negative ? -result : result;
}

/* ---- typed values ------------------------------------------------------------------------ */

/* The length of a text value (up to its first NUL); 0 for a value that is not text. */
static int text_length(int type, int64_t n, const uint8_t *p) {
    if (type != BT_CHAR) return 0;
    const void *end = memchr(p, 0, (size_t)n);
    return end ? (int)((const uint8_t *)end - p) : (int)n;
}

static inline int type_size(int t) {
    switch (t) {
    case BT_NULL: return 0;
    case BT_INT8: case BT_CHAR: return 1;
    case BT_INT16: return 2;
    case BT_INT32: case BT_FLOAT: return 4;
    default: return -1;
    }
}

/* One element: 0 = a value (in *iv / *fv), 1 = missing, 2 = end of vector. */
static inline int element(int type, const uint8_t *p, int64_t *iv, float *fv) {
    switch (type) {
    case BT_INT8: {
        int8_t v = (int8_t)p[0];
        if (v == INT8_MIN) return 1;
        if (v == INT8_MIN + 1) return 2;
        *iv = v;
        return 0;
    }
    case BT_INT16: {
        int16_t v;
        memcpy(&v, p, 2);
        if (v == INT16_MIN) return 1;
        if (v == INT16_MIN + 1) return 2;
        *iv = v;
        return 0;
    }
    case BT_INT32: {
        int32_t v;
        memcpy(&v, p, 4);
        if (v == INT32_MIN) return 1;
        if (v == INT32_MIN + 1) return 2;
        *iv = v;
        return 0;
    }
    case BT_FLOAT: {
        uint32_t u;
        memcpy(&u, p, 4);
        if (u == 0x7F800001u) return 1;
        if (u == 0x7F800002u) return 2;
        memcpy(fv, p, 4);
        return 0;
    }
    default:
        return 2;
    }
}

/* element() without the end-of-vector mark: 0 a value, 1 missing. */
static inline int raw_element(int type, const uint8_t *p, int64_t *iv, float *fv) {
    int kind = element(type, p, iv, fv);
    if (kind != 2 || type == BT_CHAR || type == BT_NULL) return kind;
    if (type == BT_FLOAT) { memcpy(fv, p, 4); return 0; }
    if (type == BT_INT8) *iv = (int8_t)p[0];
    else if (type == BT_INT16) { int16_t v; memcpy(&v, p, 2); *iv = v; }
    else { int32_t v; memcpy(&v, p, 4); *iv = v; }
    return 0;
}

/* A value as bcftools query would print it, turned into the output column's type:
 * `present` 0 = the key is absent ("."), `special1` = htslib's scalar rule for one INFO value
 * (printed without the end-of-vector check) and `empty_is_one` = an INFO key without a value
 * (printed "1"). The rules are native.py's docstring, one per output kind. */
static int put_value(Col *c, int present, int type, int64_t n, const uint8_t *p, int info_scalar) {
    if (c->vtype == VT_FLAG) return col_flag(c, present);
    if (!present) return col_null(c);
    if (n <= 0 && info_scalar) {
        /* an INFO key stored without values prints as "1" */
        if (c->vtype == VT_STR) {
            if (str_item(c, "1", 1) < 0) return -1;
            if (c->repeated) c->items++;
            return entry_end(c, 1);
        }
        if (c->repeated) {
            if (c->vtype == VT_INT) BUF_PUT_T(&c->vals, int64_t, 1); else BUF_PUT_T(&c->vals, double, 1.0);
            c->items++;
            return entry_end(c, 1);
        }
        if (c->vtype == VT_INT) BUF_PUT_T(&c->vals, int64_t, 1); else BUF_PUT_T(&c->vals, double, 1.0);
        return entry_end(c, 1);
    }
    if (n <= 0 || type == BT_NULL) return col_null(c);  /* printed "." */
    if (type == BT_CHAR) {
        const char *s = (const char *)p;
        const char *end = memchr(s, 0, (size_t)n);
        size_t len = end ? (size_t)(end - s) : (size_t)n;
        if (c->vtype != VT_STR) return col_null(c);  /* text in a numeric column: not a number */
        if (len == 1 && s[0] == '.') return col_null(c);
        if (!c->repeated) { if (str_item(c, s, len) < 0) return -1; return entry_end(c, 1); }
        /* a list of strings: the text split on commas; all "." is missing */
        size_t start = 0, dots = 0, count = 0;
        for (size_t i = 0; i <= len; i++) {
            if (i == len || s[i] == ',') {
                if (i - start == 1 && s[start] == '.') dots++;
                if (str_item(c, s + start, i - start) < 0) return -1;
                count++;
                start = i + 1;
            }
        }
        if (dots == count) {  /* drop the items again: a null list */
            c->soffs.len -= count * 4;
            int32_t last;
            memcpy(&last, c->soffs.p + c->soffs.len - 4, 4);
            c->data.len = (size_t)last;
            return col_null(c);
        }
        c->items += (int64_t)count;
        return entry_end(c, 1);
    }
    int size = type_size(type);
    if (c->vtype == VT_STR) return col_null(c);  /* numbers in a String column: not expected */
    int64_t iv = 0;
    float fv = 0;
    /* htslib prints one INFO value without looking for the end-of-vector mark: only the
     * missing value is "." */
    int single = info_scalar && n == 1;
    if (!c->repeated) {
        int kind = single ? raw_element(type, p, &iv, &fv) : element(type, p, &iv, &fv);
        if (kind != 0) return col_null(c);  /* "." or "" (nothing before the end): null */
        if (c->vtype == VT_INT) {
            if (type == BT_FLOAT) return col_null(c);  /* "1.5" is not an integer */
            BUF_PUT_T(&c->vals, int64_t, iv);
        } else {
            BUF_PUT_T(&c->vals, double, type == BT_FLOAT ? printed_float(fv) : (double)iv);
        }
        return entry_end(c, 1);
    }
    /* a list of numbers: "." items become NULL_NUMERIC; all "." is a missing list; nothing
     * before the end of the vector prints "" which reads as one unparseable item */
    int64_t count = 0, dots = 0;
    for (int64_t j = 0; j < n; j++) {
        int kind = single ? raw_element(type, p, &iv, &fv) : element(type, p + j * size, &iv, &fv);
        if (kind == 2) break;
        count++;
        if (kind == 1 || (c->vtype == VT_INT && type == BT_FLOAT)) {
            if (kind == 1) dots++;
            if (c->vtype == VT_INT) BUF_PUT_T(&c->vals, int64_t, NULL_NUMERIC);
            else BUF_PUT_T(&c->vals, double, (double)NULL_NUMERIC);
        } else if (c->vtype == VT_INT) {
            BUF_PUT_T(&c->vals, int64_t, iv);
        } else {
            BUF_PUT_T(&c->vals, double, type == BT_FLOAT ? printed_float(fv) : (double)iv);
        }
    }
    if (count == 0) {
        if (c->vtype == VT_INT) BUF_PUT_T(&c->vals, int64_t, NULL_NUMERIC);
        else BUF_PUT_T(&c->vals, double, (double)NULL_NUMERIC);
        count = 1;
    } else if (dots == count) {
        c->vals.len -= (size_t)count * 8;
        return col_null(c);
    }
    c->items += count;
    return entry_end(c, 1);
}

#endif
