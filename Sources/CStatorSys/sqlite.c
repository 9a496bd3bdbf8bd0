// SQLite through dlopen: Stator declares the few functions it uses and loads the system's
// libsqlite3.so.0 at run time, when the roll-up sink is configured. Building needs no
// SQLite headers or library; running without roll-ups needs no SQLite at all.
#include <dlfcn.h>
#include <time.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "CStatorSys.h"

// SQLITE_TRANSIENT: SQLite copies the bytes before the bind call returns.
#define STATOR_SQLITE_TRANSIENT ((void (*)(void *))-1)

static struct {
    int (*open_v2)(const char *, sqlite3 **, int, const char *);
    int (*close_v2)(sqlite3 *);
    int (*exec)(sqlite3 *, const char *, int (*)(void *, int, char **, char **), void *, char **);
    const char *(*errmsg)(sqlite3 *);
    int (*busy_timeout)(sqlite3 *, int);
    int (*prepare_v2)(sqlite3 *, const char *, int, sqlite3_stmt **, const char **);
    int (*step)(sqlite3_stmt *);
    int (*reset)(sqlite3_stmt *);
    int (*finalize)(sqlite3_stmt *);
    int (*bind_int64)(sqlite3_stmt *, int, int64_t);
    int (*bind_double)(sqlite3_stmt *, int, double);
    int (*bind_text)(sqlite3_stmt *, int, const char *, int, void (*)(void *));
    int (*bind_null)(sqlite3_stmt *, int);
    int (*bind_blob)(sqlite3_stmt *, int, const void *, int, void (*)(void *));
    int (*column_type)(sqlite3_stmt *, int);
    int64_t (*column_int64)(sqlite3_stmt *, int);
    double (*column_double)(sqlite3_stmt *, int);
    const unsigned char *(*column_text)(sqlite3_stmt *, int);
    const void *(*column_blob)(sqlite3_stmt *, int);
    int (*column_bytes)(sqlite3_stmt *, int);
    const char *(*libversion)(void);
    void (*progress_handler)(sqlite3 *, int, int (*)(void *), void *);
} api;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char load_error[256];
static int loaded;

#define LOAD(handle, field, symbol)                                                          \
    do {                                                                                     \
        *(void **)(&api.field) = dlsym(handle, symbol);                                      \
        if (api.field == NULL) {                                                             \
            snprintf(load_error, sizeof load_error, "libsqlite3.so.0 has no %s", symbol);    \
            return;                                                                          \
        }                                                                                    \
    } while (0)

static void load(void) {
    void *handle = dlopen("libsqlite3.so.0", RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *reason = dlerror();
        snprintf(load_error, sizeof load_error, "%s", reason ? reason : "dlopen libsqlite3.so.0 failed");
        return;
    }
    LOAD(handle, open_v2, "sqlite3_open_v2");
    LOAD(handle, close_v2, "sqlite3_close_v2");
    LOAD(handle, exec, "sqlite3_exec");
    LOAD(handle, errmsg, "sqlite3_errmsg");
    LOAD(handle, busy_timeout, "sqlite3_busy_timeout");
    LOAD(handle, prepare_v2, "sqlite3_prepare_v2");
    LOAD(handle, step, "sqlite3_step");
    LOAD(handle, reset, "sqlite3_reset");
    LOAD(handle, finalize, "sqlite3_finalize");
    LOAD(handle, bind_int64, "sqlite3_bind_int64");
    LOAD(handle, bind_double, "sqlite3_bind_double");
    LOAD(handle, bind_text, "sqlite3_bind_text");
    LOAD(handle, bind_null, "sqlite3_bind_null");
    LOAD(handle, bind_blob, "sqlite3_bind_blob");
    LOAD(handle, column_type, "sqlite3_column_type");
    LOAD(handle, column_int64, "sqlite3_column_int64");
    LOAD(handle, column_double, "sqlite3_column_double");
    LOAD(handle, column_text, "sqlite3_column_text");
    LOAD(handle, column_blob, "sqlite3_column_blob");
    LOAD(handle, column_bytes, "sqlite3_column_bytes");
    LOAD(handle, libversion, "sqlite3_libversion");
    LOAD(handle, progress_handler, "sqlite3_progress_handler");
    loaded = 1;
}

int CStatorSys_sqlite_load(char *error, size_t error_size) {
    pthread_once(&once, load);
    if (!loaded && error_size > 0) snprintf(error, error_size, "%s", load_error);
    return loaded;
}

// Each forwarder is called only after CStatorSys_sqlite_load returned 1 (the Swift side
// loads before it opens a database, and every other call needs an open database).
int CStatorSys_sqlite3_open_v2(const char *path, sqlite3 **db, int flags) { return api.open_v2(path, db, flags, NULL); }
int CStatorSys_sqlite3_close_v2(sqlite3 *db) { return api.close_v2(db); }
int CStatorSys_sqlite3_exec(sqlite3 *db, const char *sql) { return api.exec(db, sql, NULL, NULL, NULL); }
const char *CStatorSys_sqlite3_errmsg(sqlite3 *db) { return api.errmsg(db); }
int CStatorSys_sqlite3_busy_timeout(sqlite3 *db, int milliseconds) { return api.busy_timeout(db, milliseconds); }
int CStatorSys_sqlite3_prepare_v2(sqlite3 *db, const char *sql, sqlite3_stmt **statement) {
    return api.prepare_v2(db, sql, -1, statement, NULL);
}
int CStatorSys_sqlite3_step(sqlite3_stmt *statement) { return api.step(statement); }
int CStatorSys_sqlite3_reset(sqlite3_stmt *statement) { return api.reset(statement); }
int CStatorSys_sqlite3_finalize(sqlite3_stmt *statement) { return api.finalize(statement); }
int CStatorSys_sqlite3_bind_int64(sqlite3_stmt *statement, int index, int64_t value) {
    return api.bind_int64(statement, index, value);
}
int CStatorSys_sqlite3_bind_double(sqlite3_stmt *statement, int index, double value) {
    return api.bind_double(statement, index, value);
}
int CStatorSys_sqlite3_bind_text(sqlite3_stmt *statement, int index, const char *text, int length) {
    return api.bind_text(statement, index, text, length, STATOR_SQLITE_TRANSIENT);
}
int CStatorSys_sqlite3_bind_null(sqlite3_stmt *statement, int index) { return api.bind_null(statement, index); }
int CStatorSys_sqlite3_bind_blob(sqlite3_stmt *statement, int index, const void *bytes, int length) {
    return api.bind_blob(statement, index, bytes, length, STATOR_SQLITE_TRANSIENT);
}
int CStatorSys_sqlite3_column_type(sqlite3_stmt *statement, int column) { return api.column_type(statement, column); }
int64_t CStatorSys_sqlite3_column_int64(sqlite3_stmt *statement, int column) {
    return api.column_int64(statement, column);
}
double CStatorSys_sqlite3_column_double(sqlite3_stmt *statement, int column) {
    return api.column_double(statement, column);
}
const unsigned char *CStatorSys_sqlite3_column_text(sqlite3_stmt *statement, int column, int *length) {
    const unsigned char *text = api.column_text(statement, column);  // before column_bytes, as SQLite asks
    *length = api.column_bytes(statement, column);
    return text;
}
const void *CStatorSys_sqlite3_column_blob(sqlite3_stmt *statement, int column, int *length) {
    const void *bytes = api.column_blob(statement, column);  // before column_bytes, as SQLite asks
    *length = api.column_bytes(statement, column);
    return bytes;
}
const char *CStatorSys_sqlite3_libversion(void) { return api.libversion(); }

// SQLite calls this every STATOR_PROGRESS_STEPS virtual machine instructions of a statement
// (a few microseconds); answering non-zero stops the statement with SQLITE_INTERRUPT.
// `deadline` points at CLOCK_MONOTONIC seconds, the clock of WallClock.monotonicSeconds.
#define STATOR_PROGRESS_STEPS 1000
static int past_deadline(void *deadline) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9 >= *(const double *)deadline;
}

void CStatorSys_sqlite3_watch_deadline(sqlite3 *db, const double *deadline) {
    if (deadline == NULL) {
        api.progress_handler(db, 0, NULL, NULL);
    } else {
        api.progress_handler(db, STATOR_PROGRESS_STEPS, past_deadline, (void *)deadline);
    }
}
