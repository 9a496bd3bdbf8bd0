#ifndef C_STATOR_SYS_H
#define C_STATOR_SYS_H

// Do not define _GNU_SOURCE here: Swift imports this header, and defining it
// here breaks debug builds. shim.c defines it and calls the real functions.
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

/// Same layout as glibc's `struct mmsghdr` (checked by _Static_assert in shim.c).
typedef struct CStatorSys_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
} CStatorSys_mmsghdr;

/// Asks the CPU to start loading the cache line at `p` (a hint; never faults).
static inline void CStatorSys_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }

/// recvmmsg(2). Returns the number of messages received or -1 with errno set.
int CStatorSys_recvmmsg(int fd, CStatorSys_mmsghdr *vec, unsigned int vlen, int flags, struct timespec *timeout);

/// sendmmsg(2). Returns the number of messages sent or -1 with errno set.
int CStatorSys_sendmmsg(int fd, CStatorSys_mmsghdr *vec, unsigned int vlen, int flags);

/// MSG_WAITFORONE, which needs _GNU_SOURCE.
extern const int CStatorSys_MSG_WAITFORONE;

/// The socket's drop counter (datagrams the kernel dropped because the receive buffer was
/// full: `SK_MEMINFO_DROPS` of `getsockopt(SO_MEMINFO)`, the counter `SO_RXQ_OVFL` would
/// attach to every datagram). Returns 1 and stores it in *drops, or 0 on failure.
int CStatorSys_socket_drops(int fd, uint32_t *drops);

/// Bytes a TCP socket still holds to send, sent but unacknowledged included (`ioctl(SIOCOUTQ)`);
/// -1 on failure. Falling between two reads means the peer is taking the data.
int CStatorSys_unsent_bytes(int fd);

/// memrchr(3), a GNU extension Swift's Glibc module does not show: the last `c` in the
/// `n` bytes at `s`, or NULL.
const void *CStatorSys_memrchr(const void *s, int c, size_t n);

/// pthread_setname_np for the calling thread (needs _GNU_SOURCE). Names over 15 bytes are cut.
void CStatorSys_set_thread_name(const char *name);

/// Returns freed heap memory to the kernel (glibc `malloc_trim(0)`); returns 1 if any was released.
int CStatorSys_release_free_memory(void);

/// Fixes glibc's mmap threshold (`mallopt(M_MMAP_THRESHOLD)`): allocations of at least
/// `bytes` get their own mapping, returned to the kernel when freed. Returns 1 on success.
int CStatorSys_set_mmap_threshold(size_t bytes);

/// Upper bound of the gzip output for `length` input bytes.
size_t CStatorSys_gzip_bound(size_t length);

/// Compresses `input` as one gzip member (system zlib, given level) into `output`.
/// Returns the number of bytes written, or 0 on failure (including too small an output).
size_t CStatorSys_gzip(const uint8_t *input, size_t length, uint8_t *output, size_t capacity, int level);

/// A gzip (or gunzip) stream writing into a growing buffer owned by the stream.
typedef struct CStatorSys_zstream {
    void *z;          // the z_stream
    uint8_t *out;     // output so far (malloc'd)
    size_t length;    // bytes in out
    size_t capacity;  // size of out
    int inflating;
} CStatorSys_zstream;

/// Starts a gzip compressor (level 1-9). Returns 0 on success.
int CStatorSys_zstream_deflate_init(CStatorSys_zstream *s, int level);

/// Starts a gzip decompressor (multi-member input is fine). Returns 0 on success.
int CStatorSys_zstream_inflate_init(CStatorSys_zstream *s);

/// Feeds input; `finish` ends the stream. Output accumulates in s->out. Returns 0 on success.
int CStatorSys_zstream_write(CStatorSys_zstream *s, const uint8_t *input, size_t length, int finish);

/// Frees the z_stream and the output buffer.
void CStatorSys_zstream_free(CStatorSys_zstream *s);

/// The layout of the reader's key cache (`LineIdentityCache`) that `CStatorSys_scan_lines` assumes
/// when it starts fetching a line's set: sets of `CStatorSys_CACHE_SET_BYTES` bytes (four ways
/// of an 8-byte hash and an 8-byte position), and a line's set picked by its identity hash
/// shifted right by `CStatorSys_CACHE_SET_SHIFT`, masked by the number of sets minus one.
/// `LineIdentityCache` reads these two constants and checks its own layout against them.
#define CStatorSys_CACHE_SET_BYTES 64
#define CStatorSys_CACHE_SET_SHIFT 40

/// The most bytes of name and suffix a line's identity may take (`LineIdentityCache.maxBytes`:
/// a longer line is never cached, so it is not hashed either). Beyond it a line is scanned as
/// not simple, and a line with a 60 KB name costs no hash of its 60 KB.
#define CStatorSys_IDENTITY_MAX_BYTES 4096

/// One line of a datagram, as `CStatorSys_scan_lines` finds it (Swift: `LineScanner.Line`).
typedef struct CStatorSys_line {
    int64_t start;      // the line: bytes start..<end (the `\n` and a `\r` before it excluded)
    int64_t end;
    int64_t colon;      // a simple line's first `:` and the `|` that ends its value; else -1
    int64_t pipe;
    uint64_t identity;  // a simple line's identity hash (never 0); else 0
    uint64_t record;    // left for the caller: set to UINT64_MAX
} CStatorSys_line;

/// Finds the non-empty lines of `count` bytes (split at `\n`, a trailing `\r` stripped) and,
/// for each simple line (`name:value|suffix`: a first `:`, then a `|` before any other `:`,
/// name and suffix together at most `CStatorSys_IDENTITY_MAX_BYTES`),
/// where its `:` and `|` are and `CStatorSys_identity_hash` of its name and suffix, starting
/// to fetch the set `sets + ((identity >> CStatorSys_CACHE_SET_SHIFT) & set_mask) *
/// CStatorSys_CACHE_SET_BYTES` of each (see `CStatorSys_CACHE_SET_BYTES`). Writes at
/// most `count / 2 + 1` lines to `out` (the most a datagram can hold); returns how many.
size_t CStatorSys_scan_lines(const uint8_t *bytes, size_t count, uint64_t seed, CStatorSys_line *out,
                             const void *sets, uint64_t set_mask);

/// The identity hash of a line (never 0): `name_length` bytes at `bytes + name` and
/// `suffix_length` at `bytes + suffix`, each in eight-byte words from its start (the last zero
/// above its bytes), a multiply per word, then both lengths and one final mix. Reads nothing
/// outside the `count` bytes at `bytes`.
uint64_t CStatorSys_identity_hash(const uint8_t *bytes, size_t count, size_t name, size_t name_length, size_t suffix,
                                  size_t suffix_length, uint64_t seed);

// SQLite, loaded at run time (sqlite.c): the system's libsqlite3.so.0 is opened with dlopen
// only when the roll-up sink is configured, so nothing is needed to build Stator. The
// functions below forward to the library's, with SQLite's own meaning and return codes.
typedef struct sqlite3 sqlite3;
typedef struct sqlite3_stmt sqlite3_stmt;

/// Loads libsqlite3.so.0 and its functions, once. Returns 1, or 0 with the reason in `error`.
int CStatorSys_sqlite_load(char *error, size_t error_size);

int CStatorSys_sqlite3_open_v2(const char *path, sqlite3 **db, int flags);
int CStatorSys_sqlite3_close_v2(sqlite3 *db);
int CStatorSys_sqlite3_exec(sqlite3 *db, const char *sql);
const char *CStatorSys_sqlite3_errmsg(sqlite3 *db);
int CStatorSys_sqlite3_busy_timeout(sqlite3 *db, int milliseconds);
int CStatorSys_sqlite3_prepare_v2(sqlite3 *db, const char *sql, sqlite3_stmt **statement);
int CStatorSys_sqlite3_step(sqlite3_stmt *statement);
int CStatorSys_sqlite3_reset(sqlite3_stmt *statement);
int CStatorSys_sqlite3_finalize(sqlite3_stmt *statement);
int CStatorSys_sqlite3_bind_int64(sqlite3_stmt *statement, int index, int64_t value);
int CStatorSys_sqlite3_bind_double(sqlite3_stmt *statement, int index, double value);
/// Binds `length` bytes of text, copied by SQLite (SQLITE_TRANSIENT).
int CStatorSys_sqlite3_bind_text(sqlite3_stmt *statement, int index, const char *text, int length);
int CStatorSys_sqlite3_bind_null(sqlite3_stmt *statement, int index);
/// Binds `length` bytes as a blob, copied by SQLite (SQLITE_TRANSIENT).
int CStatorSys_sqlite3_bind_blob(sqlite3_stmt *statement, int index, const void *bytes, int length);
int CStatorSys_sqlite3_column_type(sqlite3_stmt *statement, int column);
int64_t CStatorSys_sqlite3_column_int64(sqlite3_stmt *statement, int column);
double CStatorSys_sqlite3_column_double(sqlite3_stmt *statement, int column);
/// The column's text (NULL for a NULL value) and its length in bytes in `length`.
const unsigned char *CStatorSys_sqlite3_column_text(sqlite3_stmt *statement, int column, int *length);
/// The column's blob (NULL for a NULL or empty value) and its length in bytes in `length`.
const void *CStatorSys_sqlite3_column_blob(sqlite3_stmt *statement, int column, int *length);
const char *CStatorSys_sqlite3_libversion(void);
/// Makes the connection's statements stop with SQLITE_INTERRUPT (9) once CLOCK_MONOTONIC
/// passes `*deadline` seconds (read while they run: it must stay valid until the next call);
/// NULL removes the watch.
void CStatorSys_sqlite3_watch_deadline(sqlite3 *db, const double *deadline);

#endif
