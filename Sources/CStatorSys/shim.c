#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <malloc.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <zlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <linux/sock_diag.h>
#include "CStatorSys.h"

_Static_assert(sizeof(CStatorSys_mmsghdr) == sizeof(struct mmsghdr), "CStatorSys_mmsghdr size differs from mmsghdr");
_Static_assert(offsetof(CStatorSys_mmsghdr, msg_len) == offsetof(struct mmsghdr, msg_len), "msg_len offset differs");

const int CStatorSys_MSG_WAITFORONE = MSG_WAITFORONE;

int CStatorSys_recvmmsg(int fd, CStatorSys_mmsghdr *vec, unsigned int vlen, int flags, struct timespec *timeout) {
    return recvmmsg(fd, (struct mmsghdr *)vec, vlen, flags, timeout);
}

int CStatorSys_sendmmsg(int fd, CStatorSys_mmsghdr *vec, unsigned int vlen, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)vec, vlen, flags);
}

int CStatorSys_socket_drops(int fd, uint32_t *drops) {
    uint32_t info[SK_MEMINFO_VARS];
    socklen_t length = sizeof(info);
    if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, info, &length) != 0) return 0;
    if (length < (SK_MEMINFO_DROPS + 1) * sizeof(uint32_t)) return 0;
    *drops = info[SK_MEMINFO_DROPS];
    return 1;
}

int CStatorSys_release_free_memory(void) { return malloc_trim(0); }

int CStatorSys_unsent_bytes(int fd) {
    int queued = 0;
    return ioctl(fd, SIOCOUTQ, &queued) == 0 ? queued : -1;
}

int CStatorSys_set_mmap_threshold(size_t bytes) { return mallopt(M_MMAP_THRESHOLD, (int)bytes); }

void CStatorSys_set_thread_name(const char *name) {
    char cut[16];
    strncpy(cut, name, sizeof(cut) - 1);
    cut[sizeof(cut) - 1] = 0;
    pthread_setname_np(pthread_self(), cut);
}

size_t CStatorSys_gzip_bound(size_t length) {
    // deflateBound for raw deflate, plus the gzip header and trailer and some slack.
    return length + length / 1000 + 64 + 18;
}

size_t CStatorSys_gzip(const uint8_t *input, size_t length, uint8_t *output, size_t capacity, int level) {
    z_stream z;
    memset(&z, 0, sizeof(z));
    // windowBits 15 + 16: a gzip wrapper rather than zlib's.
    if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return 0;
    size_t written = 0;
    int rc = Z_OK;
    z.next_out = output;
    z.avail_out = (uInt)(capacity > 0xFFFFFFFFu ? 0xFFFFFFFFu : capacity);
    const uint8_t *p = input;
    size_t left = length;
    do {
        uInt chunk = (uInt)(left > 0x40000000u ? 0x40000000u : left);
        z.next_in = (Bytef *)p;
        z.avail_in = chunk;
        p += chunk;
        left -= chunk;
        rc = deflate(&z, left == 0 ? Z_FINISH : Z_NO_FLUSH);
        if (rc == Z_STREAM_ERROR || (rc != Z_STREAM_END && z.avail_out == 0)) break;
    } while (left > 0);
    if (rc == Z_STREAM_END) written = z.total_out;
    deflateEnd(&z);
    return written;
}

static int zstream_reserve(CStatorSys_zstream *s, size_t more) {
    if (s->capacity - s->length >= more) return 0;
    size_t size = s->capacity ? s->capacity : 65536;
    while (size - s->length < more) size *= 2;
    uint8_t *bigger = realloc(s->out, size);
    if (bigger == NULL) return -1;
    s->out = bigger;
    s->capacity = size;
    return 0;
}

int CStatorSys_zstream_deflate_init(CStatorSys_zstream *s, int level) {
    memset(s, 0, sizeof(*s));
    z_stream *z = calloc(1, sizeof(z_stream));
    if (z == NULL) return -1;
    if (deflateInit2(z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) { free(z); return -1; }
    s->z = z;
    return 0;
}

int CStatorSys_zstream_inflate_init(CStatorSys_zstream *s) {
    memset(s, 0, sizeof(*s));
    z_stream *z = calloc(1, sizeof(z_stream));
    if (z == NULL) return -1;
    if (inflateInit2(z, 15 + 16) != Z_OK) { free(z); return -1; }
    s->z = z;
    s->inflating = 1;
    return 0;
}

int CStatorSys_zstream_write(CStatorSys_zstream *s, const uint8_t *input, size_t length, int finish) {
    z_stream *z = s->z;
    z->next_in = (Bytef *)input;
    z->avail_in = (uInt)length;
    for (;;) {
        if (zstream_reserve(s, 65536) != 0) return -1;
        z->next_out = s->out + s->length;
        z->avail_out = (uInt)(s->capacity - s->length > 0x40000000u ? 0x40000000u : s->capacity - s->length);
        uInt before = z->avail_out;
        int rc;
        if (s->inflating) {
            rc = inflate(z, Z_NO_FLUSH);
            if (rc == Z_STREAM_END) {
                s->length += before - z->avail_out;
                if (z->avail_in == 0) return 0;
                // Another gzip member follows.
                if (inflateReset(z) != Z_OK) return -1;
                continue;
            }
            if (rc != Z_OK && rc != Z_BUF_ERROR) return -1;
        } else {
            rc = deflate(z, finish ? Z_FINISH : Z_NO_FLUSH);
            if (rc == Z_STREAM_ERROR) return -1;
        }
        s->length += before - z->avail_out;
        if (!s->inflating && finish) {
            if (rc == Z_STREAM_END) return 0;
            continue;
        }
        if (z->avail_in == 0 && z->avail_out > 0) return 0;
        if (s->inflating && rc == Z_BUF_ERROR && z->avail_in == 0) return 0;
    }
}

void CStatorSys_zstream_free(CStatorSys_zstream *s) {
    if (s->z != NULL) {
        if (s->inflating) inflateEnd(s->z); else deflateEnd(s->z);
        free(s->z);
    }
    free(s->out);
    memset(s, 0, sizeof(*s));
}

const void *CStatorSys_memrchr(const void *s, int c, size_t n) { return memrchr(s, c, n); }
