/* The byte stream: raw BCF, or BGZF made of stored deflate blocks (part of _bcfarrow.c; included once, by it). */
#ifndef BCFARROW_STREAM_H
#define BCFARROW_STREAM_H

/* ---- the byte stream: raw BCF, or BGZF of stored deflate blocks --------------------------- */

typedef struct {
    int fd;
    int bgzf;           /* -1 unknown, 0 raw, 1 BGZF */
    int eof;
    Buf in;             /* decoded bytes; [pos, len) not yet consumed */
    size_t pos;
    Buf raw;            /* BGZF: compressed bytes not yet decoded */
    size_t raw_pos;
} Stream;

static int read_fd(int fd, Buf *b, size_t want) {
    if (buf_reserve(b, want) < 0) return -1;
    ssize_t got;
    do { got = read(fd, b->p + b->len, want); } while (got < 0 && errno == EINTR);
    if (got < 0) { err_errno = errno; return fail(ERR_OS, NULL); }
    b->len += (size_t)got;
    return (int)(got > 0);
}

static void compact(Buf *b, size_t *pos) {
    if (*pos == 0) return;
    memmove(b->p, b->p + *pos, b->len - *pos);
    b->len -= *pos;
    *pos = 0;
}

/* Decode whole BGZF blocks from s->raw into s->in. Returns 1 if any were decoded, 0 if more raw
 * bytes are needed, -1 on error. */
static int bgzf_blocks(Stream *s) {
    int decoded = 0;
    for (;;) {
        size_t have = s->raw.len - s->raw_pos;
        const uint8_t *b = (const uint8_t *)s->raw.p + s->raw_pos;
        if (have < 18) return decoded;
        if (b[0] != 31 || b[1] != 139 || b[2] != 8 || !(b[3] & 4)) {
            return fail(ERR_VALUE, "corrupt BGZF block header in the normalized stream");
        }
        unsigned xlen = b[10] | (b[11] << 8);
        if (have < 12 + (size_t)xlen) return decoded;
        long bsize = -1;
        for (unsigned x = 0; x + 4 <= xlen;) {
            const uint8_t *f = b + 12 + x;
            unsigned slen = f[2] | (f[3] << 8);
            if (f[0] == 66 && f[1] == 67 && slen == 2) bsize = (f[4] | (f[5] << 8)) + 1;
            x += 4 + slen;
        }
        if (bsize < 0) return fail(ERR_VALUE, "BGZF block without its size");
        if (have < (size_t)bsize) return decoded;
        const uint8_t *d = b + 12 + xlen, *end = b + bsize - 8;
        uint32_t isize = (uint32_t)end[4] | ((uint32_t)end[5] << 8) | ((uint32_t)end[6] << 16) | ((uint32_t)end[7] << 24);
        /* an empty block (the end-of-file marker is one) holds nothing to decode, whatever its
         * deflate bytes say (the marker's are a fixed-Huffman empty block) */
        for (; isize != 0;) {
            if (d >= end) return fail(ERR_VALUE, "corrupt deflate data in the normalized stream");
            int final = d[0] & 1, btype = (d[0] >> 1) & 3;
            if (btype != 0) {
                return fail(ERR_VALUE, "the normalized stream is compressed BGZF; the native "
                                       "decoder reads only uncompressed BCF (bcftools -Ou)");
            }
            if (d + 5 > end) return fail(ERR_VALUE, "truncated stored deflate block");
            unsigned len = d[1] | (d[2] << 8), nlen = d[3] | (d[4] << 8);
            if ((len ^ 0xFFFFu) != nlen || d + 5 + len > end) {
                return fail(ERR_VALUE, "corrupt stored deflate block");
            }
            if (buf_put(&s->in, d + 5, len) < 0) return -1;
            d += 5 + len;
            if (final) break;
        }
        s->raw_pos += (size_t)bsize;
        decoded = 1;
    }
}

/* Make at least `need` decoded bytes available at s->in.p + s->pos. 1 ok, 0 end of stream
 * before that, -1 error. */
static int stream_need(Stream *s, size_t need) {
    while (s->in.len - s->pos < need) {
        if (s->eof) return 0;
        if (s->pos > (1 << 20) && s->pos > s->in.len / 2) compact(&s->in, &s->pos);
        if (s->bgzf == 0) {
            int r = read_fd(s->fd, &s->in, need - (s->in.len - s->pos) > (1 << 20) ? need - (s->in.len - s->pos) : (1 << 20));
            if (r < 0) return -1;
            if (r == 0) s->eof = 1;
            continue;
        }
        if (s->raw_pos > (1 << 20)) compact(&s->raw, &s->raw_pos);
        int r = read_fd(s->fd, &s->raw, 1 << 20);
        if (r < 0) return -1;
        if (s->bgzf < 0 && s->raw.len >= 2) {
            const uint8_t *b = (const uint8_t *)s->raw.p;
            s->bgzf = b[0] == 31 && b[1] == 139;
            if (!s->bgzf) {  /* raw BCF: what we read is already decoded */
                if (buf_put(&s->in, s->raw.p, s->raw.len) < 0) return -1;
                s->raw.len = 0;
                if (r == 0) s->eof = 1;
                continue;
            }
        }
        if (s->bgzf == 1 && bgzf_blocks(s) < 0) return -1;
        if (r == 0) {
            if (s->bgzf == 1 && s->raw.len - s->raw_pos > 0) {
                return fail(ERR_VALUE, "the normalized stream ends inside a BGZF block");
            }
            if (s->bgzf < 0 && s->raw.len) {
                if (buf_put(&s->in, s->raw.p, s->raw.len) < 0) return -1;
                s->raw.len = 0;
            }
            s->eof = 1;
        }
    }
    return 1;
}

#endif
