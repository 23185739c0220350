/* The per-request work of ObservabilityMiddleware, compiled.
 *
 * Python in `middleware.py` is the reference: every branch here does what a line there does, and the tests run
 * both and compare them. This file exists because that work, a few dozen dict, tuple and attribute operations a
 * request, costs about 7 us in the interpreter and about a tenth of that here; behind a server the difference
 * doubles, since a slower request loop also batches less (see BENCHMARKS.md, observability).
 *
 * `Hot` holds what the middleware knows once (the metrics tables, the options, the access log and its context
 * variable); `Hot.begin(scope, send)` starts a request and returns its `Responder`, the `send` the app sees;
 * `Responder.end(error)` counts it and writes its access line. Anything off the common path (an app-bound log
 * field, an exception, a closed or foreign log configuration, exemplars) is handed to the Python methods that
 * handle it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <structmember.h>

/* ------------------------------------------------------------------ interned names */

static PyObject *s_type, *s_status, *s_headers, *s_body, *s_start_kind, *s_body_kind, *s_state, *s_request_id,
    *s_route, *s_path_format, *s_path, *s_method, *s_client, *s_logs, *s_closed, *s_level, *s_extra_processors,
    *s_writer, *s_put, *s_finish, *s_lines, *s_append, *s_capacity, *s_nudge_at, *s_buckets, *s_total, *s_other, *s_5xx, *h_request_id, *h_server_timing, *one, *zero, *empty_bytes;

static int
intern_names(void)
{
#define NAME(var, text) \
    if ((var = PyUnicode_InternFromString(text)) == NULL) return -1
    NAME(s_type, "type");
    NAME(s_status, "status");
    NAME(s_headers, "headers");
    NAME(s_body, "body");
    NAME(s_start_kind, "http.response.start");
    NAME(s_body_kind, "http.response.body");
    NAME(s_state, "state");
    NAME(s_request_id, "request_id");
    NAME(s_route, "route");
    NAME(s_path_format, "path_format");
    NAME(s_path, "path");
    NAME(s_method, "method");
    NAME(s_client, "client");
    NAME(s_logs, "logs");
    NAME(s_closed, "_closed");  /* StructuredLogs' and BackgroundWriter's (`closed` is a property) */
    NAME(s_lines, "_lines");
    NAME(s_buckets, "buckets");
    NAME(s_total, "total");
    NAME(s_append, "append");
    NAME(s_capacity, "capacity");
    NAME(s_nudge_at, "_nudge_at");
    NAME(s_level, "level");
    NAME(s_extra_processors, "extra_processors");
    NAME(s_writer, "writer");
    NAME(s_put, "put");
    NAME(s_finish, "finish");
    NAME(s_other, "OTHER");
    NAME(s_5xx, "5xx");
#undef NAME
    if ((h_request_id = PyBytes_FromString("x-request-id")) == NULL) return -1;
    if ((h_server_timing = PyBytes_FromString("server-timing")) == NULL) return -1;
    if ((one = PyLong_FromLong(1)) == NULL) return -1;
    if ((zero = PyLong_FromLong(0)) == NULL) return -1;
    if ((empty_bytes = PyBytes_FromStringAndSize(NULL, 0)) == NULL) return -1;
    return 0;
}

static double
monotonic_seconds(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now); /* the clock of time.perf_counter on Linux */
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

/* ------------------------------------------------------------------ a growable byte buffer for one line */

typedef struct {
    char *data;
    Py_ssize_t len, cap;
    char small[512];
} Buffer;

static void
buffer_init(Buffer *b)
{
    b->data = b->small;
    b->len = 0;
    b->cap = (Py_ssize_t)sizeof(b->small);
}

static void
buffer_free(Buffer *b)
{
    if (b->data != b->small) PyMem_Free(b->data);
}

static int
buffer_reserve(Buffer *b, Py_ssize_t extra)
{
    if (b->len + extra <= b->cap) return 0;
    if (extra > PY_SSIZE_T_MAX / 2 - b->len) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t cap = b->cap;
    while (cap < b->len + extra) cap *= 2;
    char *data = PyMem_Malloc((size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memcpy(data, b->data, (size_t)b->len);
    buffer_free(b);
    b->data = data;
    b->cap = cap;
    return 0;
}

static int
buffer_add(Buffer *b, const char *text, Py_ssize_t len)
{
    if (buffer_reserve(b, len) < 0) return -1;
    memcpy(b->data + b->len, text, (size_t)len);
    b->len += len;
    return 0;
}

#define ADD_LITERAL(b, text) buffer_add((b), (text), (Py_ssize_t)(sizeof(text) - 1))

/* A JSON string as orjson writes it: quotes, backslashes and control characters escaped, the rest as UTF-8.
 * Returns 1 when `value` cannot be written here (not a str, or not encodable: lone surrogates), so the caller
 * hands the line to Python, whose renderer has a fallback for those. */
static int
add_json_string(Buffer *b, PyObject *value)
{
    static const char hex[] = "0123456789abcdef";
    if (!PyUnicode_CheckExact(value)) return 1;
    Py_ssize_t len;
    const char *text = PyUnicode_AsUTF8AndSize(value, &len);
    if (text == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return -1;
        PyErr_Clear(); /* lone surrogates: Python's renderer writes them escaped */
        return 1;
    }
    if (len > (PY_SSIZE_T_MAX - 2) / 6) {
        PyErr_NoMemory();
        return -1;
    }
    if (buffer_reserve(b, len * 6 + 2) < 0) return -1;
    char *out = b->data + b->len;
    *out++ = '"';
    for (Py_ssize_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            *out++ = (char)c;
            continue;
        }
        *out++ = '\\';
        switch (c) {
        case '"': *out++ = '"'; break;
        case '\\': *out++ = '\\'; break;
        case '\b': *out++ = 'b'; break;
        case '\t': *out++ = 't'; break;
        case '\n': *out++ = 'n'; break;
        case '\f': *out++ = 'f'; break;
        case '\r': *out++ = 'r'; break;
        default:
            *out++ = 'u';
            *out++ = '0';
            *out++ = '0';
            *out++ = hex[c >> 4];
            *out++ = hex[c & 0xf];
        }
    }
    *out++ = '"';
    b->len = out - b->data;
    return 0;
}

/* Decimal digits of `value` (not negative) written backwards from `end`; returns where they start. printf is
 * general and slow: these few formats are written by hand. */
static char *
digits_before(char *end, unsigned long long value)
{
    do {
        *--end = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    return end;
}

static int
add_long_long(Buffer *b, long long value)
{
    char text[24];
    char *end = text + sizeof(text);
    char *start = digits_before(end, value < 0 ? 0ULL - (unsigned long long)value : (unsigned long long)value);
    if (value < 0) *--start = '-';
    return buffer_add(b, start, end - start);
}

/* `whole / 10**places` written with `places` decimals ("12.345"); `whole` is not negative. */
static Py_ssize_t
format_fixed(char *out, unsigned long long whole, int places)
{
    char text[32];
    char *end = text + sizeof(text), *start = end;
    for (int i = 0; i < places; i++) {
        *--start = (char)('0' + whole % 10);
        whole /= 10;
    }
    *--start = '.';
    start = digits_before(start, whole);
    memcpy(out, start, (size_t)(end - start));
    return end - start;
}

/* `whole_us / 1000` as orjson writes that float: the shortest form that reads back, here always the decimal
 * with its trailing zeros cut and at least one digit after the point (exact for any duration under 31 years). */
static int
add_milliseconds(Buffer *b, long long whole_us)
{
    char text[32];
    Py_ssize_t len = format_fixed(text, whole_us < 0 ? 0 : (unsigned long long)whole_us, 3);
    while (text[len - 1] == '0' && text[len - 2] != '.') len--;
    return buffer_add(b, text, len);
}

/* ------------------------------------------------------------------ Hot: what the middleware knows once */

/* One remembered label set -> series, so a repeated (method, route, status class) skips building and hashing the
 * key tuple. The labels are compared by identity (a route's template is the same str object request after
 * request). An entry holds while the series table has the size and the process the fork count it had when the
 * entry was made: RequestMetrics only adds series (new_series) or clears them all after a fork (_forked). */
#define SERIES_CACHE 8

typedef struct {
    PyObject *method, *route, *status_class, *series;
    Py_ssize_t table_size;
    unsigned long forks;
} SeriesEntry;

typedef struct {
    PyObject_HEAD
    PyObject *in_flight;      /* dict: method label -> requests in flight */
    PyObject *series;         /* dict: (method, route, status class) -> _Series */
    PyObject *status_classes; /* dict: status code -> "2xx"... */
    PyObject *methods;        /* frozenset of method labels kept as they are */
    PyObject *new_series;     /* RequestMetrics._new_series */
    PyObject *route_of;       /* ObservabilityMiddleware.route_of: templates this file does not read itself */
    PyObject *request_var;    /* the request's log context variable, or None without an access log */
    PyObject *access;         /* AccessLog or None */
    PyObject *exemplars;      /* trace id getter or None */
    PyObject *exemplar;       /* RequestMetrics.exemplar */
    PyObject *level_info;     /* "info" */
    PyObject *level_error;    /* AccessLog.server_errors_as */
    PyObject *logger_name;    /* AccessLog.logger_name */
    double *bounds;           /* histogram upper bounds, seconds */
    Py_ssize_t nbounds;
    long info_level, error_level; /* logging levels of the two kinds of line */
    int server_timing, trust_request_id;
    int ready;                /* __init__ ran (and tp_clear has not) */
    uint64_t rng;             /* splitmix64 state: request ids */
    unsigned long rng_forks;  /* fork_count when `rng` was last mixed with the process id */
    /* BackgroundWriter.put's common case, done here: the logs it was looked up for, their writer, its deque,
     * the deque's append, and the writer's fixed capacity and nudge threshold. */
    PyObject *queue_logs, *queue_writer, *queue_lines, *queue_append;
    Py_ssize_t queue_capacity, queue_nudge_at;
    /* The logs' level and whether they have extra processors: fixed when configure_logging built them (structlog's
     * filtering logger is made from that level), so read once per logs object too. */
    long queue_level;
    int queue_extra;
    unsigned long long fast_lines; /* access lines this file rendered itself (the tests check the path is taken) */
    SeriesEntry series_cache[SERIES_CACHE];
    /* The series class (metrics._Series) keeps `buckets` and `total` in __slots__: where, read once from its
     * member descriptors, so a request reads and writes them without two attribute lookups and a store. */
    PyTypeObject *series_type;
    Py_ssize_t buckets_offset, total_offset;
    time_t stamp_second;      /* the second `stamp` spells */
    char stamp[80];           /* "YYYY-MM-DDTHH:MM:SS" */
} Hot;

typedef struct {
    PyObject_HEAD
    Hot *hot;
    PyObject *send;
    PyObject *scope;
    PyObject *raw_id;     /* bytes */
    PyObject *request_id; /* str */
    PyObject *method;     /* method label */
    PyObject *status;     /* int object from the app's start message, or NULL (then 500) */
    PyObject *outer;      /* a copy of the context before the request, NULL if that was empty (access log only) */
    PyObject *token;      /* the request context variable's token (access log only) */
    Py_ssize_t sent;
    double started;
    int ended;
    vectorcallfunc vectorcall;
} Responder;

static PyTypeObject ResponderType;

/* How many context variables the running context holds, without copying it (a copy is an allocation). */
static Py_ssize_t
current_context_size(void)
{
#if PY_VERSION_HEX < 0x030F0000 /* the thread state's `context` field, present from 3.7 through at least 3.14 */
    PyObject *context = PyThreadState_Get()->context;
    return context == NULL ? 0 : PyObject_Length(context);
#else
    PyObject *context = PyContext_CopyCurrent();
    Py_ssize_t size = context == NULL ? -1 : PyObject_Length(context);
    Py_XDECREF(context);
    return size;
#endif
}

static PyObject *Responder_call(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames);

/* splitmix64's finaliser: spreads every input bit over the output. */
static uint64_t
next_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Forks of this process so far (in a child: counted by the child handler). A forked worker must not repeat its
 * parent's or its siblings' request ids, so each Hot mixes the process id into its state after a fork. */
static volatile unsigned long fork_count;

static void
count_fork(void)
{
    fork_count++;
}

static uint64_t
next_random(Hot *hot)
{
    if (hot->rng_forks != fork_count) {
        /* The process id alone would let a recycled pid replay a dead worker's ids: mix in the clock too. */
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        hot->rng_forks = fork_count;
        hot->rng ^= (uint64_t)getpid() * 0xD1B54A32D192ED03ULL ^ ((uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec);
        hot->rng = next_mix(hot->rng);
    }
    return next_mix(hot->rng += 0x9E3779B97F4A7C15ULL);
}

static int Hot_clear(Hot *self);

static void
Hot_dealloc(Hot *self)
{
    PyObject_GC_UnTrack(self);
    Hot_clear(self);
    PyMem_Free(self->bounds);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Every object a Hot holds, for tp_traverse and tp_clear (one list, so the two cannot drift apart). */
#define HOT_OBJECTS(X)                                                                                            \
    X(in_flight) X(series) X(status_classes) X(methods) X(new_series) X(route_of) X(request_var) X(access)       \
    X(exemplars) X(exemplar) X(level_info) X(level_error) X(logger_name) X(queue_logs) X(queue_writer)           \
    X(queue_lines) X(queue_append) X(series_type)
#define SERIES_ENTRY_OBJECTS(X) X(method) X(route) X(status_class) X(series)

static int
Hot_traverse(Hot *self, visitproc visit, void *arg)
{
#define VISIT(field) Py_VISIT(self->field);
#define VISIT_ENTRY(field) Py_VISIT(self->series_cache[i].field);
    HOT_OBJECTS(VISIT)
    for (int i = 0; i < SERIES_CACHE; i++) {
        SERIES_ENTRY_OBJECTS(VISIT_ENTRY)
    }
#undef VISIT
#undef VISIT_ENTRY
    return 0;
}

/* Drop the remembered series (a second __init__ may bring another registry). */
static void
forget_series(Hot *self)
{
#define CLEAR_ENTRY(field) Py_CLEAR(self->series_cache[i].field);
    for (int i = 0; i < SERIES_CACHE; i++) {
        SERIES_ENTRY_OBJECTS(CLEAR_ENTRY)
    }
#undef CLEAR_ENTRY
}

static int
Hot_clear(Hot *self)
{
    self->ready = 0;
#define CLEAR(field) Py_CLEAR(self->field);
    HOT_OBJECTS(CLEAR)
#undef CLEAR
    forget_series(self);
    return 0;
}

static int
Hot_init(Hot *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"in_flight", "series", "status_classes", "methods", "new_series", "route_of",
                               "buckets", "server_timing", "trust_request_id", "seed", "request_var", "access",
                               "info_level", "error_level", "exemplars", "exemplar", NULL};
    PyObject *in_flight, *series, *status_classes, *methods, *new_series, *route_of, *buckets, *request_var,
        *access, *exemplars, *exemplar;
    int server_timing, trust_request_id;
    unsigned long long seed;
    long info_level, error_level;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$O!O!O!O!OOOppKOOllOO", keywords, &PyDict_Type, &in_flight,
                                     &PyDict_Type, &series, &PyDict_Type, &status_classes, &PyFrozenSet_Type,
                                     &methods, &new_series, &route_of, &buckets, &server_timing,
                                     &trust_request_id, &seed, &request_var, &access, &info_level, &error_level,
                                     &exemplars, &exemplar))
        return -1;
    PyObject *bounds = PySequence_Fast(buckets, "buckets must be a sequence of floats");
    if (bounds == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(bounds);
    double *values = PyMem_Malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    if (values == NULL) {
        Py_DECREF(bounds);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        values[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(bounds, i));
        if (values[i] == -1.0 && PyErr_Occurred()) {
            Py_DECREF(bounds);
            PyMem_Free(values);
            return -1;
        }
    }
    Py_DECREF(bounds);
    PyMem_Free(self->bounds);
    self->bounds = values;
    self->nbounds = n;
#define KEEP(field, value) Py_XSETREF(self->field, Py_NewRef(value))
    KEEP(in_flight, in_flight);
    KEEP(series, series);
    KEEP(status_classes, status_classes);
    KEEP(methods, methods);
    KEEP(new_series, new_series);
    KEEP(route_of, route_of);
    KEEP(request_var, request_var);
    KEEP(access, access);
    KEEP(exemplars, exemplars);
    KEEP(exemplar, exemplar);
#undef KEEP
    Py_XSETREF(self->level_info, PyUnicode_InternFromString("info"));
    if (self->level_info == NULL) return -1;
    if (access != Py_None) {
        Py_XSETREF(self->level_error, PyObject_GetAttrString(access, "server_errors_as"));
        Py_XSETREF(self->logger_name, PyObject_GetAttrString(access, "logger_name"));
        if (self->level_error == NULL || self->logger_name == NULL) return -1;
    }
    self->info_level = info_level;
    self->error_level = error_level;
    self->server_timing = server_timing;
    self->trust_request_id = trust_request_id;
    forget_series(self); /* a second __init__ may bring another registry, and other logs */
    Py_CLEAR(self->queue_logs);
    self->rng = (uint64_t)seed;
    self->rng_forks = fork_count;
    self->stamp_second = (time_t)-1;
    self->ready = 1;
    return 0;
}

/* The index `bisect.bisect_left(bounds, seconds)` returns. */
static Py_ssize_t
bucket_of(Hot *hot, double seconds)
{
    Py_ssize_t low = 0, high = hot->nbounds;
    while (low < high) {
        Py_ssize_t middle = (low + high) / 2;
        if (hot->bounds[middle] < seconds)
            low = middle + 1;
        else
            high = middle;
    }
    return low;
}

static int
valid_request_id(PyObject *value)
{
    if (!PyBytes_CheckExact(value)) return 0;
    Py_ssize_t len = PyBytes_GET_SIZE(value);
    if (len < 1 || len > 128) return 0;
    const unsigned char *text = (const unsigned char *)PyBytes_AS_STRING(value);
    for (Py_ssize_t i = 0; i < len; i++) {
        unsigned char c = text[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == ':' || c == '-'))
            return 0;
    }
    return 1;
}

/* The incoming X-Request-ID if the first one is well formed (a new reference); NULL with no error when there is
 * none or it is malformed; NULL with an error where the Python path raises (no headers, an item that is not a
 * pair, a str value). */
static PyObject *
incoming_request_id(PyObject *scope)
{
    PyObject *headers = PyDict_GetItemWithError(scope, s_headers);
    if (headers == NULL) {
        if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, s_headers);
        return NULL;
    }
    PyObject *items = PySequence_Fast(headers, "The scope's headers must be iterable.");
    if (items == NULL) return NULL;
    PyObject *found = NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PySequence_Fast(PySequence_Fast_GET_ITEM(items, i), "A header must be a (name, value) pair.");
        if (pair == NULL) goto fail;
        if (PySequence_Fast_GET_SIZE(pair) != 2) {
            Py_DECREF(pair);
            PyErr_SetString(PyExc_ValueError, "A header must be a (name, value) pair.");
            goto fail;
        }
        PyObject *name = PySequence_Fast_GET_ITEM(pair, 0), *value = PySequence_Fast_GET_ITEM(pair, 1);
        int matches = PyBytes_CheckExact(name) ? PyBytes_GET_SIZE(name) == 12 &&
                                                     memcmp(PyBytes_AS_STRING(name), "x-request-id", 12) == 0
                                               : PyObject_RichCompareBool(name, h_request_id, Py_EQ);
        if (matches != 1) {
            Py_DECREF(pair);
            if (matches < 0) goto fail;
            continue;
        }
        if (PyUnicode_Check(value)) {
            Py_DECREF(pair);
            PyErr_SetString(PyExc_TypeError, "A header value must be bytes, not str.");
            goto fail;
        }
        PyObject *raw = PyBytes_CheckExact(value) ? Py_NewRef(value) : PyBytes_FromObject(value);
        Py_DECREF(pair);
        if (raw == NULL) goto fail;
        if (valid_request_id(raw))
            found = raw; /* a malformed id is replaced, never echoed */
        else
            Py_DECREF(raw);
        break;
    }
    Py_DECREF(items);
    return found;
fail:
    Py_DECREF(items);
    return NULL;
}

static PyObject *
Hot_begin(Hot *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyDict_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "begin(scope: dict, send) takes the request's scope and send");
        return NULL;
    }
    if (!self->ready) {
        PyErr_SetString(PyExc_RuntimeError, "This Hot was not initialised.");
        return NULL;
    }
    PyObject *scope = args[0];
    double started = monotonic_seconds();
    Responder *r = PyObject_GC_New(Responder, &ResponderType);
    if (r == NULL) return NULL;
    r->hot = (Hot *)Py_NewRef(self);
    r->send = Py_NewRef(args[1]);
    r->scope = Py_NewRef(scope);
    r->raw_id = r->request_id = r->method = r->status = r->outer = r->token = NULL;
    r->sent = 0;
    r->started = started;
    r->ended = 0;
    r->vectorcall = Responder_call;
    PyObject_GC_Track(r);

    if (self->trust_request_id) {
        r->raw_id = incoming_request_id(scope);
        if (r->raw_id == NULL && PyErr_Occurred()) goto fail;
    }
    if (r->raw_id == NULL) {
        static const char hex[] = "0123456789abcdef";
        char text[16];
        uint64_t bits = next_random(self);
        for (int i = 15; i >= 0; i--, bits >>= 4) text[i] = hex[bits & 0xf];
        r->raw_id = PyBytes_FromStringAndSize(text, 16);
        if (r->raw_id == NULL) goto fail;
    }
    r->request_id = PyUnicode_DecodeASCII(PyBytes_AS_STRING(r->raw_id), PyBytes_GET_SIZE(r->raw_id), NULL);
    if (r->request_id == NULL) goto fail;
    PyObject *state = Py_XNewRef(PyDict_GetItemWithError(scope, s_state));
    if (state != NULL) {
        int stored = PyObject_SetItem(state, s_request_id, r->request_id);
        Py_DECREF(state);
        if (stored < 0) goto fail;
    }
    else {
        if (PyErr_Occurred()) goto fail;
        state = PyDict_New();
        if (state == NULL) goto fail;
        int failed = PyDict_SetItem(state, s_request_id, r->request_id) < 0 ||
                     PyDict_SetItem(scope, s_state, state) < 0;
        Py_DECREF(state);
        if (failed) goto fail;
    }

    /* RequestMetrics.started */
    PyObject *method = Py_XNewRef(PyDict_GetItemWithError(scope, s_method));
    if (method == NULL) {
        if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, s_method);
        goto fail;
    }
    int known = PySet_Contains(self->methods, method);
    if (known >= 0) r->method = Py_NewRef(known ? method : s_other);
    Py_DECREF(method);
    if (known < 0) goto fail;
    PyObject *count = PyDict_GetItemWithError(self->in_flight, r->method);
    if (count == NULL && PyErr_Occurred()) goto fail;
    PyObject *more = count == NULL ? PyLong_FromLong(1) : PyNumber_Add(count, one);
    if (more == NULL) goto fail;
    int stored = PyDict_SetItem(self->in_flight, r->method, more);
    Py_DECREF(more);
    if (stored < 0) goto fail;

    /* AccessLog.start: the context before, and the request's log context */
    if (self->access != Py_None) {
        Py_ssize_t size = current_context_size();
        if (size < 0) goto fail;
        if (size > 0 && (r->outer = PyContext_CopyCurrent()) == NULL) goto fail;
        PyObject *context = PyTuple_Pack(3, r->request_id, scope, self->route_of);
        if (context == NULL) goto fail;
        r->token = PyContextVar_Set(self->request_var, context);
        Py_DECREF(context);
        if (r->token == NULL) goto fail;
    }
    return (PyObject *)r;
fail:
    r->ended = 1; /* nothing to undo: the request never started */
    Py_DECREF(r);
    return NULL;
}

static PyObject *
Hot_get_fast_lines(Hot *self, void *closure)
{
    return PyLong_FromUnsignedLongLong(self->fast_lines);
}

static PyGetSetDef Hot_getset[] = {
    {"fast_lines", (getter)Hot_get_fast_lines, NULL, "Access lines the compiled path rendered itself.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef Hot_methods[] = {
    {"begin", (PyCFunction)(void (*)(void))Hot_begin, METH_FASTCALL,
     "begin(scope, send) -> Responder: start a request (its id, in-flight count and log context)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject HotType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "overdrive.observability._speedups.Hot",
    .tp_basicsize = sizeof(Hot),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "What ObservabilityMiddleware knows once: metrics tables, options, the access log.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Hot_init,
    .tp_dealloc = (destructor)Hot_dealloc,
    .tp_traverse = (traverseproc)Hot_traverse,
    .tp_clear = (inquiry)Hot_clear,
    .tp_methods = Hot_methods,
    .tp_getset = Hot_getset,
};

/* ------------------------------------------------------------------ Responder: the send the app sees */

static void
Responder_dealloc(Responder *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->hot);
    Py_CLEAR(self->send);
    Py_CLEAR(self->scope);
    Py_CLEAR(self->raw_id);
    Py_CLEAR(self->request_id);
    Py_CLEAR(self->method);
    Py_CLEAR(self->status);
    Py_CLEAR(self->outer);
    Py_CLEAR(self->token);
    PyObject_GC_Del(self);
}

static int
Responder_traverse(Responder *self, visitproc visit, void *arg)
{
    Py_VISIT(self->hot);
    Py_VISIT(self->send);
    Py_VISIT(self->scope);
    Py_VISIT(self->status);
    Py_VISIT(self->outer);
    Py_VISIT(self->token);
    return 0;
}

static int
Responder_clear(Responder *self)
{
    Py_CLEAR(self->send);
    Py_CLEAR(self->scope);
    Py_CLEAR(self->status);
    Py_CLEAR(self->outer);
    Py_CLEAR(self->token);
    return 0;
}

static int
append_header(PyObject *headers, PyObject *name, PyObject *value)
{
    PyObject *pair = PyTuple_Pack(2, name, value);
    if (pair == NULL) return -1;
    int result = PyList_Append(headers, pair);
    Py_DECREF(pair);
    return result;
}

/* message.get(key, default) as a new reference. */
static PyObject *
message_get(PyObject *message, PyObject *key, PyObject *fallback)
{
    if (PyDict_CheckExact(message)) {
        PyObject *value = PyDict_GetItemWithError(message, key);
        if (value == NULL && PyErr_Occurred()) return NULL;
        return Py_NewRef(value != NULL ? value : fallback);
    }
    return PyObject_CallMethod(message, "get", "OO", key, fallback);
}

/* Amend the start message: status noted, the request id and Server-Timing added to its headers. */
static int
on_start(Responder *self, PyObject *message)
{
    PyObject *status = PyObject_GetItem(message, s_status);
    if (status == NULL) return -1;
    Py_XSETREF(self->status, status);
    /* The message is ours to amend (the app built it for this call); copy headers only if not a list. */
    PyObject *headers = message_get(message, s_headers, Py_None);
    if (headers == NULL) return -1;
    if (!PyList_CheckExact(headers)) {
        int truthy = PyObject_IsTrue(headers);
        PyObject *copy = truthy < 0 ? NULL : truthy ? PySequence_List(headers) : PyList_New(0);
        Py_DECREF(headers);
        if (copy == NULL) return -1;
        if (PyObject_SetItem(message, s_headers, copy) < 0) {
            Py_DECREF(copy);
            return -1;
        }
        headers = copy;
    }
    int result = append_header(headers, h_request_id, self->raw_id);
    if (result == 0 && self->hot->server_timing) {
        /* "app;dur=%.2f" of the milliseconds so far (rounded half up, where % rounds half to even) */
        char text[64] = "app;dur=";
        double hundredths = (monotonic_seconds() - self->started) * 100000 + 0.5;
        Py_ssize_t len = 8 + format_fixed(text + 8, hundredths > 0 ? (unsigned long long)hundredths : 0, 2);
        PyObject *value = PyBytes_FromStringAndSize(text, len);
        result = value == NULL ? -1 : append_header(headers, h_server_timing, value);
        Py_XDECREF(value);
    }
    Py_DECREF(headers);
    return result;
}

static PyObject *
Responder_call(PyObject *callable, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Responder *self = (Responder *)callable;
    if (self->send == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "This request's send is gone.");
        return NULL;
    }
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL) {
        PyErr_SetString(PyExc_TypeError, "send(message) takes one message");
        return NULL;
    }
    PyObject *message = args[0];
    PyObject *kind = PyObject_GetItem(message, s_type);
    if (kind == NULL) return NULL;
    int is_body = PyObject_RichCompareBool(kind, s_body_kind, Py_EQ);
    int is_start = is_body == 0 ? PyObject_RichCompareBool(kind, s_start_kind, Py_EQ) : 0;
    Py_DECREF(kind);
    if (is_body < 0 || is_start < 0) return NULL;
    if (is_body) {
        PyObject *body = message_get(message, s_body, empty_bytes);
        if (body == NULL) return NULL;
        Py_ssize_t size = PyBytes_CheckExact(body) ? PyBytes_GET_SIZE(body) : PyObject_Size(body);
        Py_DECREF(body);
        if (size < 0) return NULL;
        self->sent += size;
    }
    else if (is_start && on_start(self, message) < 0)
        return NULL;
    return PyObject_CallOneArg(self->send, message);
}

/* getattr(obj, name, None): a new reference, NULL for a missing attribute (no error), NULL with an error set. */
static PyObject *
optional_attr(PyObject *obj, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL && PyErr_ExceptionMatches(PyExc_AttributeError)) PyErr_Clear();
    return value;
}

/* The route template: Starlette's and FastAPI's route from the scope, else ObservabilityMiddleware.route_of. */
static PyObject *
route_of(Responder *self)
{
    PyObject *route = Py_XNewRef(PyDict_GetItemWithError(self->scope, s_route));
    if (route == NULL && PyErr_Occurred()) return NULL;
    if (route != NULL && route != Py_None) {
        /* getattr(route, "path_format", None) or getattr(route, "path", None) */
        PyObject *template = optional_attr(route, s_path_format);
        int truthy = template == NULL ? (PyErr_Occurred() ? -1 : 0) : PyObject_IsTrue(template);
        if (truthy == 0) {
            Py_XDECREF(template);
            template = optional_attr(route, s_path);
            if (template == NULL && PyErr_Occurred()) truthy = -1;
        }
        Py_DECREF(route);
        if (truthy < 0) {
            Py_XDECREF(template);
            return NULL;
        }
        if (template != NULL && PyUnicode_Check(template)) return template;
        Py_XDECREF(template);
    }
    else
        Py_XDECREF(route);
    return PyObject_CallOneArg(self->hot->route_of, self->scope);
}

static int add_observation(Hot *hot, PyObject *series, double seconds);

/* RequestMetrics.finished */
static int
count_request(Responder *self, PyObject *route, PyObject *status, double seconds)
{
    Hot *hot = self->hot;
    PyObject *count = PyDict_GetItemWithError(hot->in_flight, self->method);
    if (count == NULL) {
        if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, self->method);
        return -1;
    }
    PyObject *fewer = PyNumber_Subtract(count, one);
    if (fewer == NULL) return -1;
    int stored = PyDict_SetItem(hot->in_flight, self->method, fewer);
    Py_DECREF(fewer);
    if (stored < 0) return -1;

    PyObject *status_class = PyDict_GetItemWithError(hot->status_classes, status);
    if (status_class == NULL) {
        if (PyErr_Occurred()) return -1;
        status_class = s_5xx;
    }
    uintptr_t mix = ((uintptr_t)self->method ^ (uintptr_t)route ^ (uintptr_t)status_class) >> 4;
    SeriesEntry *entry = &hot->series_cache[(mix ^ (mix >> 7)) % SERIES_CACHE];
    PyObject *series;
    if (entry->route == route && entry->method == self->method && entry->status_class == status_class &&
        entry->table_size == PyDict_GET_SIZE(hot->series) && entry->forks == fork_count)
        series = Py_NewRef(entry->series);
    else {
        PyObject *key = PyTuple_Pack(3, self->method, route, status_class);
        if (key == NULL) return -1;
        series = Py_XNewRef(PyDict_GetItemWithError(hot->series, key));
        if (series == NULL) series = PyErr_Occurred() ? NULL : PyObject_CallOneArg(hot->new_series, key);
        Py_DECREF(key);
        if (series == NULL) return -1;
        entry->table_size = -1; /* invalid while it is rewritten (releasing old values may run code) */
        Py_XSETREF(entry->method, Py_NewRef(self->method));
        Py_XSETREF(entry->route, Py_NewRef(route));
        Py_XSETREF(entry->status_class, Py_NewRef(status_class));
        Py_XSETREF(entry->series, Py_NewRef(series));
        entry->table_size = PyDict_GET_SIZE(hot->series);
        entry->forks = fork_count;
    }
    int result = add_observation(hot, series, seconds);
    Py_DECREF(series);
    return result;
}

/* The offset of `name` in instances of `type` if it is an object slot of its layout, else -1. */
static Py_ssize_t
slot_offset(PyTypeObject *type, PyObject *name)
{
    PyObject *descriptor = _PyType_Lookup(type, name); /* borrowed, through the MRO */
    if (descriptor == NULL || !Py_IS_TYPE(descriptor, &PyMemberDescr_Type) ||
        !PyType_IsSubtype(type, PyDescr_TYPE(descriptor)))
        return -1; /* not a slot of this layout: a descriptor copied from another class would point elsewhere */
    PyMemberDef *member = ((PyMemberDescrObject *)descriptor)->d_member;
    return member->type == T_OBJECT_EX && !(member->flags & READONLY) ? member->offset : -1;
}

/* series.buckets[index] += 1; series.total += seconds, through the object protocol: for counts past 64 bits
 * and anything else the in-place path does not recognise. */
static int
add_observation_slowly(PyObject *series, Py_ssize_t index, double seconds)
{
    int result = -1;
    PyObject *count = NULL, *more = NULL, *total = NULL, *elapsed = NULL, *sum = NULL;
    PyObject *buckets = PyObject_GetAttr(series, s_buckets);
    if (buckets == NULL || (count = PySequence_GetItem(buckets, index)) == NULL ||
        (more = PyNumber_Add(count, one)) == NULL || PySequence_SetItem(buckets, index, more) < 0 ||
        (total = PyObject_GetAttr(series, s_total)) == NULL || (elapsed = PyFloat_FromDouble(seconds)) == NULL ||
        (sum = PyNumber_Add(total, elapsed)) == NULL)
        goto done;
    result = PyObject_SetAttr(series, s_total, sum);
done:
    Py_XDECREF(buckets);
    Py_XDECREF(count);
    Py_XDECREF(more);
    Py_XDECREF(total);
    Py_XDECREF(elapsed);
    Py_XDECREF(sum);
    return result;
}

/* series.buckets[bisect_left(bounds, seconds)] += 1; series.total += seconds */
static int
add_observation(Hot *hot, PyObject *series, double seconds)
{
    if (hot->series_type != Py_TYPE(series)) {
        Py_ssize_t buckets_offset = slot_offset(Py_TYPE(series), s_buckets);
        Py_ssize_t total_offset = slot_offset(Py_TYPE(series), s_total);
        if (buckets_offset < 0 || total_offset < 0) return add_observation_slowly(series, bucket_of(hot, seconds), seconds);
        Py_XSETREF(hot->series_type, (PyTypeObject *)Py_NewRef(Py_TYPE(series)));
        hot->buckets_offset = buckets_offset;
        hot->total_offset = total_offset;
    }
    PyObject *buckets = *(PyObject **)((char *)series + hot->buckets_offset);
    PyObject **total = (PyObject **)((char *)series + hot->total_offset);
    Py_ssize_t index = bucket_of(hot, seconds);
    if (buckets == NULL || !PyList_CheckExact(buckets) || index >= PyList_GET_SIZE(buckets) || *total == NULL ||
        !PyFloat_CheckExact(*total))
        return add_observation_slowly(series, index, seconds);
    PyObject *count = PyList_GET_ITEM(buckets, index);
    long long before = PyLong_CheckExact(count) ? PyLong_AsLongLong(count) : -1;
    if (before < 0 || before == LLONG_MAX) {
        PyErr_Clear();
        return add_observation_slowly(series, index, seconds);
    }
    /* From here to the stores no Python code runs, so `buckets` and `*total` stay what was checked. */
    PyObject *more = PyLong_FromLongLong(before + 1);
    PyObject *sum = more == NULL ? NULL : PyFloat_FromDouble(PyFloat_AS_DOUBLE(*total) + seconds);
    if (sum == NULL) {
        Py_XDECREF(more);
        return -1;
    }
    Py_SETREF(PyList_GET_ITEM(buckets, index), more);
    Py_SETREF(*total, sum);
    return 0;
}

/* The access line of `configure_logging`'s fast path, as access.py builds it and orjson renders it. */
static PyObject *
render_line(PyObject *level, PyObject *logger, PyObject *request_id, PyObject *method, PyObject *path,
            PyObject *route, long long status, long long whole_us, long long sent, PyObject *client,
            const char *stamp, long microsecond)
{
    Buffer b;
    buffer_init(&b);
    int r = ADD_LITERAL(&b, "{\"event\":\"request\",\"level\":");
    if (r == 0) r = add_json_string(&b, level);
    if (r == 0) r = ADD_LITERAL(&b, ",\"logger\":");
    if (r == 0) r = add_json_string(&b, logger);
    if (r == 0) r = ADD_LITERAL(&b, ",\"request_id\":");
    if (r == 0) r = add_json_string(&b, request_id);
    if (r == 0) r = ADD_LITERAL(&b, ",\"method\":");
    if (r == 0) r = add_json_string(&b, method);
    if (r == 0) r = ADD_LITERAL(&b, ",\"path\":");
    if (r == 0) r = add_json_string(&b, path);
    if (r == 0) r = ADD_LITERAL(&b, ",\"route\":");
    if (r == 0) r = add_json_string(&b, route);
    if (r == 0) r = ADD_LITERAL(&b, ",\"status\":");
    if (r == 0) r = add_long_long(&b, status);
    if (r == 0) r = ADD_LITERAL(&b, ",\"duration_ms\":");
    if (r == 0) r = add_milliseconds(&b, whole_us);
    if (r == 0) r = ADD_LITERAL(&b, ",\"bytes_sent\":");
    if (r == 0) r = add_long_long(&b, sent);
    if (r == 0) r = ADD_LITERAL(&b, ",\"client\":");
    if (r == 0) r = client == Py_None ? ADD_LITERAL(&b, "null") : add_json_string(&b, client);
    if (r == 0) r = ADD_LITERAL(&b, ",\"timestamp\":\"");
    if (r == 0) r = buffer_add(&b, stamp, (Py_ssize_t)strlen(stamp));
    if (r == 0 && microsecond != 0) { /* orjson leaves out a zero fraction */
        char fraction[16];
        Py_ssize_t len = format_fixed(fraction, 1000000 + (unsigned long long)microsecond, 6);
        r = buffer_add(&b, fraction + 1, len - 1); /* "1.000120" -> ".000120" */
    }
    if (r == 0) r = ADD_LITERAL(&b, "Z\"}\n");
    PyObject *line = r == 0 ? PyBytes_FromStringAndSize(b.data, b.len) : NULL;
    buffer_free(&b);
    if (r > 0) Py_RETURN_NONE; /* a value only Python's renderer writes */
    return line;
}

/* "YYYY-MM-DDTHH:MM:SS" in UTC, as orjson writes a datetime before its fraction; -1 outside gmtime's range. */
static int
format_stamp(time_t second, char *out, size_t size)
{
    struct tm parts;
    if (gmtime_r(&second, &parts) == NULL) return -1;
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d", parts.tm_year + 1900, parts.tm_mon + 1, parts.tm_mday,
             parts.tm_hour, parts.tm_min, parts.tm_sec);
    return 0;
}

/* The stamp is formatted once a second, not once a line. */
static int
update_stamp(Hot *hot, time_t second)
{
    if (second == hot->stamp_second) return 0;
    if (format_stamp(second, hot->stamp, sizeof(hot->stamp)) < 0) return -1;
    hot->stamp_second = second;
    return 0;
}

static long
integer_attr(PyObject *obj, PyObject *name)
{
    PyObject *value = PyObject_GetAttr(obj, name);
    if (value == NULL) return -1;
    long result = PyLong_AsLong(value);
    Py_DECREF(value);
    return result;
}

/* Look up (once per logs object) their level, their extra processors and what queue_line needs of their writer. */
static int
find_queue(Hot *hot, PyObject *logs)
{
    long level = integer_attr(logs, s_level);
    if (level == -1 && PyErr_Occurred()) return -1;
    PyObject *extra = PyObject_GetAttr(logs, s_extra_processors);
    int has_extra = extra == NULL ? -1 : PyObject_IsTrue(extra);
    Py_XDECREF(extra);
    if (has_extra < 0) return -1;
    PyObject *writer = PyObject_GetAttr(logs, s_writer);
    if (writer == NULL) return -1;
    PyObject *lines = PyObject_GetAttr(writer, s_lines);
    PyObject *append = lines == NULL ? NULL : PyObject_GetAttr(lines, s_append);
    long capacity = append == NULL ? -1 : integer_attr(writer, s_capacity);
    long nudge_at = capacity < 0 ? -1 : integer_attr(writer, s_nudge_at);
    if (nudge_at < 0) {
        Py_DECREF(writer);
        Py_XDECREF(lines);
        Py_XDECREF(append);
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a log writer's capacity must not be negative");
        return -1;
    }
    Py_XSETREF(hot->queue_logs, Py_NewRef(logs));
    Py_XSETREF(hot->queue_writer, writer);
    Py_XSETREF(hot->queue_lines, lines);
    Py_XSETREF(hot->queue_append, append);
    hot->queue_capacity = capacity;
    hot->queue_nudge_at = nudge_at;
    hot->queue_level = level;
    hot->queue_extra = has_extra;
    return 0;
}

/* BackgroundWriter.put(line): its common case here (room in the buffer, no nudge due), the rest through it. */
static int
queue_line(Hot *hot, PyObject *line)
{
    PyObject *closed = PyObject_GetAttr(hot->queue_writer, s_closed);
    if (closed == NULL) return -1;
    int open = closed == Py_False;
    Py_DECREF(closed);
    Py_ssize_t queued = PyObject_Length(hot->queue_lines);
    if (queued < 0) return -1;
    PyObject *done;
    if (open && queued < hot->queue_capacity && queued + 1 != hot->queue_nudge_at)
        done = PyObject_CallOneArg(hot->queue_append, line);
    else
        done = PyObject_CallMethodOneArg(hot->queue_writer, s_put, line);
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

/* 1: written (or filtered out by level), 0: not this path's to write, -1: error. */
static int
write_fast(Responder *self, PyObject *route, long long status, double seconds)
{
    Hot *hot = self->hot;
    if (self->outer != NULL) return 0; /* fields bound around the request */
    Py_ssize_t bound = current_context_size();
    if (bound != 1) return bound < 0 ? -1 : 0; /* fields the app bound: merged by access.py */
    PyObject *logs = PyObject_GetAttr(hot->access, s_logs);
    if (logs == NULL) return -1;
    int result = 0;
    PyObject *closed = NULL, *client = NULL, *line = NULL;
    if (logs == Py_None) goto done;
    if ((closed = optional_attr(logs, s_closed)) == NULL) {
        if (PyErr_Occurred()) goto error;
        goto done; /* not configure_logging's logs: access.py knows what to do */
    }
    if (closed != Py_False) goto done;
    if (logs != hot->queue_logs && find_queue(hot, logs) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) goto error;
        PyErr_Clear(); /* logs of another kind: access.py knows what to do */
        goto done;
    }
    if (hot->queue_extra) goto done; /* the user's processors run in Python */
    int failed = status >= 500;
    result = 1;
    if (hot->queue_level > (failed ? hot->error_level : hot->info_level)) goto done;
    /* client[0] if client else None */
    PyObject *client_pair = Py_XNewRef(PyDict_GetItemWithError(self->scope, s_client));
    if (client_pair == NULL && PyErr_Occurred()) goto error;
    int has_client = client_pair == NULL || client_pair == Py_None ? 0 : PyObject_IsTrue(client_pair);
    client = has_client > 0 ? PyObject_GetItem(client_pair, zero) : has_client == 0 ? Py_NewRef(Py_None) : NULL;
    Py_XDECREF(client_pair);
    if (client == NULL) goto error;
    PyObject *method = PyDict_GetItemWithError(self->scope, s_method);
    PyObject *path = method == NULL ? NULL : PyDict_GetItemWithError(self->scope, s_path);
    if (path == NULL) {
        if (PyErr_Occurred()) goto error;
        result = 0; /* access.py raises the KeyError */
        goto done;
    }
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    if (update_stamp(hot, wall.tv_sec) < 0) {
        result = 0;
        goto done;
    }
    line = render_line(failed ? hot->level_error : hot->level_info, hot->logger_name, self->request_id, method,
                       path, route, status, (long long)(seconds * 1000000), (long long)self->sent, client,
                       hot->stamp, wall.tv_nsec / 1000);
    if (line == NULL) goto error;
    if (line == Py_None) {
        result = 0;
        goto done;
    }
    if (queue_line(hot, line) < 0) goto error;
    hot->fast_lines++;
    goto done;
error:
    result = -1;
done:
    Py_DECREF(logs);
    Py_XDECREF(closed);
    Py_XDECREF(client);
    Py_XDECREF(line);
    return result;
}

/* access.py's finish, for everything the fast path leaves: it resets the context variable itself. */
static int
write_slow(Responder *self, PyObject *route, PyObject *status, double seconds, PyObject *error)
{
    PyObject *outer = self->outer != NULL ? Py_NewRef(self->outer) : PyContext_New();
    PyObject *started = outer == NULL ? NULL : PyTuple_Pack(2, outer, self->token);
    Py_XDECREF(outer);
    if (started == NULL) return -1;
    PyObject *seconds_object = PyFloat_FromDouble(seconds);
    PyObject *sent = PyLong_FromSsize_t(self->sent);
    PyObject *result = NULL;
    if (seconds_object != NULL && sent != NULL) {
        PyObject *call_args[] = {self->hot->access, self->scope, started, self->request_id, route,
                                 status,           seconds_object, sent,  error};
        result = PyObject_VectorcallMethod(s_finish, call_args, 9 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
    Py_DECREF(started);
    Py_XDECREF(seconds_object);
    Py_XDECREF(sent);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

static int
note_exemplar(Responder *self, PyObject *route, PyObject *status, double seconds)
{
    Hot *hot = self->hot;
    PyObject *trace_id = PyObject_CallNoArgs(hot->exemplars);
    if (trace_id == NULL) return -1;
    int result = 0;
    if (trace_id != Py_None) {
        PyObject *seconds_object = PyFloat_FromDouble(seconds);
        PyObject *done = NULL;
        if (seconds_object != NULL) {
            PyObject *call_args[] = {NULL, self->method, route, status, seconds_object, trace_id};
            done = PyObject_Vectorcall(hot->exemplar, call_args + 1, 5 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        }
        result = done == NULL ? -1 : 0;
        Py_XDECREF(done);
        Py_XDECREF(seconds_object);
    }
    Py_DECREF(trace_id);
    return result;
}

/* Reset the request's log context variable, keeping whatever error is being raised (an error of the reset itself,
 * such as a token already used or another context, is dropped then). -1 when the reset's error is left to raise. */
static int
end_log_context(Responder *self)
{
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    if (PyContextVar_Reset(self->hot->request_var, self->token) < 0) {
        if (type == NULL) return -1;
        PyErr_Clear();
    }
    PyErr_Restore(type, value, traceback);
    return 0;
}

static PyObject *
Responder_end(Responder *self, PyObject *error)
{
    if (self->ended) {
        PyErr_SetString(PyExc_RuntimeError, "This request has already ended.");
        return NULL;
    }
    self->ended = 1;
    Hot *hot = self->hot;
    if (!hot->ready || self->scope == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "This request's middleware is gone.");
        return NULL;
    }
    PyObject *status = self->status != NULL ? Py_NewRef(self->status) : PyLong_FromLong(500);
    if (status == NULL) return NULL;
    PyObject *route = route_of(self);
    double seconds = monotonic_seconds() - self->started; /* after the route, as the Python path times it */
    int failed = route == NULL || count_request(self, route, status, seconds) < 0;
    if (!failed && hot->exemplars != Py_None) failed = note_exemplar(self, route, status, seconds) < 0;
    if (self->token != NULL) {
        if (failed)
            end_log_context(self); /* as access.py would, had it been reached */
        else {
            int written = 0;
            if (error == Py_None && PyLong_CheckExact(status)) {
                long long code = PyLong_AsLongLong(status);
                if (code == -1 && PyErr_Occurred())
                    PyErr_Clear(); /* out of range: Python's path writes it */
                else
                    written = write_fast(self, route, code, seconds);
                if (written != 0 && end_log_context(self) < 0) written = -1;
            }
            if (written == 0 && write_slow(self, route, status, seconds, error) < 0) {
                end_log_context(self); /* in case it failed before access.py reset it (else a no-op) */
                written = -1;
            }
            failed = written < 0;
        }
    }
    Py_XDECREF(route);
    Py_DECREF(status);
    if (failed) return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Responder_get_request_id(Responder *self, void *closure)
{
    return Py_NewRef(self->request_id);
}

static PyMethodDef Responder_methods[] = {
    {"end", (PyCFunction)Responder_end, METH_O,
     "end(error): the app returned (None) or raised (the exception): count the request and write its line."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Responder_getset[] = {
    {"request_id", (getter)Responder_get_request_id, NULL, "The request's id.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ResponderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "overdrive.observability._speedups.Responder",
    .tp_basicsize = sizeof(Responder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "The send an app gets from ObservabilityMiddleware: notes the status and size, adds headers.",
    .tp_dealloc = (destructor)Responder_dealloc,
    .tp_traverse = (traverseproc)Responder_traverse,
    .tp_clear = (inquiry)Responder_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(Responder, vectorcall),
    .tp_methods = Responder_methods,
    .tp_getset = Responder_getset,
};

/* ------------------------------------------------------------------ the module */

static PyObject *
access_line(PyObject *module, PyObject *args)
{
    PyObject *level, *logger, *request_id, *method, *path, *route, *client;
    long long status, whole_us, sent, unix_us;
    if (!PyArg_ParseTuple(args, "OOOOOOLLLOL", &level, &logger, &request_id, &method, &path, &route, &status,
                          &whole_us, &sent, &client, &unix_us))
        return NULL;
    char stamp[80];
    if (unix_us < 0 || format_stamp((time_t)(unix_us / 1000000), stamp, sizeof(stamp)) < 0) {
        PyErr_SetString(PyExc_OverflowError, "The timestamp is out of range.");
        return NULL;
    }
    return render_line(level, logger, request_id, method, path, route, status, whole_us, sent, client, stamp,
                       (long)(unix_us % 1000000));
}

static PyMethodDef module_methods[] = {
    {"access_line", access_line, METH_VARARGS,
     "access_line(level, logger, request_id, method, path, route, status, whole_us, sent, client, unix_us): "
     "the access line the compiled path writes, or None where it leaves the line to Python (for tests)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "overdrive.observability._speedups",
    .m_doc = "The compiled per-request path of ObservabilityMiddleware (middleware.py is the reference).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (intern_names() < 0) return NULL;
    if (pthread_atfork(NULL, NULL, count_fork) != 0) {
        PyErr_SetString(PyExc_OSError, "Could not register the fork handler that keeps request ids unique.");
        return NULL;
    }
    if (PyType_Ready(&HotType) < 0 || PyType_Ready(&ResponderType) < 0) return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL) return NULL;
    if (PyModule_AddObjectRef(module, "Hot", (PyObject *)&HotType) < 0 ||
        PyModule_AddObjectRef(module, "Responder", (PyObject *)&ResponderType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
