/*
 * pythanc: REST dispatch, the C side of a REST request (compiled after bootstrap.c, whose
 * pythanc_context it uses).
 *
 * What this file owns: the C entry point of each REST route, the packing of a request's strings
 * for one call into Python (pythanc_rest_packed, pythanc/callbacks/rest.py), the sending of the
 * first answer after Python has returned, the REST dispatch threads with their queue, and the gate
 * that lets a route be added to Orthanc after start-up without a deadlock.
 *
 * Copyright (C) 2026 the pythanc authors. GPL-3.0-or-later.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/*
 * REST requests: Orthanc calls the route's entry point (see pythanc_rest_entry_for below), and
 * pythanc_rest_route() copies the request's strings (URI, groups, GET arguments, headers) into one NUL-separated block
 * of a per-thread buffer and calls the Python entry point pythanc_rest_packed() once.  Python then
 * decodes the whole block at once instead of fetching each string through cffi: this is the
 * plugin's hottest path, and the time Python spends there is time every other callback waits for
 * the GIL.
 *
 * A first RestOutput.AnswerBuffer() that fits in PYTHANC_ANSWER_CAPACITY is not sent by Python:
 * Python copies "<mime type> NUL <body>" into a per-thread buffer and returns 1 + the body's size,
 * and C sends it here, after Python has returned and released the GIL, so that sending it (a
 * socket write) does not hold the GIL.  Python's return value: < 0 is minus an error code, 0 is
 * success with nothing left to send, > 0 is success with an answer of (value - 1) bytes to send.
 * No Python API is used here.
 */
static __thread char* pythanc_scratch = NULL;
static __thread size_t pythanc_scratch_size = 0;
#define PYTHANC_SCRATCH_KEEP (256 * 1024)  /* larger buffers are freed after the request */
#define PYTHANC_ANSWER_CAPACITY (64 * 1024)
static __thread char* pythanc_answer = NULL;

static size_t pythanc_strings_size(uint32_t n, const char* const* a, const char* const* b)
{
  size_t total = 0;
  uint32_t i;
  for (i = 0; i < n; i++)
  {
    total += strlen(a[i]) + 1;
    if (b != NULL)
      total += strlen(b[i]) + 1;
  }
  return total;
}

static char* pythanc_strings_copy(char* out, uint32_t n, const char* const* a, const char* const* b)
{
  uint32_t i;
  for (i = 0; i < n; i++)
  {
    size_t k = strlen(a[i]) + 1;
    memcpy(out, a[i], k);
    out += k;
    if (b != NULL)
    {
      k = strlen(b[i]) + 1;
      memcpy(out, b[i], k);
      out += k;
    }
  }
  return out;
}


/*
 * Routes added after start-up (issue 16; the registrar is in pythanc/callbacks/rest.py).
 *
 * Orthanc 1.10 (OrthancPlugins::Handle) holds its route table's lock, a boost::shared_mutex, in
 * shared mode for the whole time a plugin's REST callback runs, and adding a route
 * (OrthancPlugins::RegisterRestCallback) takes it exclusively; a writer that waits also blocks new
 * readers.  So a route added from a REST callback waited for that callback itself, for ever, and
 * every HTTP request with it.  A route added while another REST callback runs is safe only if
 * that callback neither makes a nested REST call through the plugins (RestApiGetAfterPlugins) nor
 * takes a lock that the registration holds (storing an instance, another registration).
 *
 * So pythanc adds a route only when none of its REST callbacks runs, and while it adds one (the
 * "gate" is closed), a request that reaches a pythanc route is answered 503 at once instead of
 * entering Python: it holds Orthanc's lock in shared mode already, and a callback of it that
 * waited for the writer would wait for ever.
 *
 * pythanc_rest_busy, one word: PYTHANC_GATE_STEP x the number of REST (and chunked REST) callbacks
 * of pythanc between entry and return, | PYTHANC_GATE_PENDING while the registrar waits for a
 * moment when none runs, | PYTHANC_GATE_CLOSED while it adds a route.  The callback that leaves
 * last closes the gate itself when a registration is pending (the registrar, woken later, would
 * often miss so short a moment under load); every change is one atomic operation on that word.
 */
#define PYTHANC_GATE_CLOSED 1u
#define PYTHANC_GATE_PENDING 2u
#define PYTHANC_GATE_STEP 4u
static uint32_t pythanc_rest_busy = 0;
static uint32_t pythanc_rest_closed = 0;   /* futex word, bumped when a leaving callback closes the gate */

/* A REST callback enters: 1, or 0 if the gate is closed (then no pythanc_rest_leave()). */
static int pythanc_rest_enter(void)
{
  if (__atomic_fetch_add(&pythanc_rest_busy, PYTHANC_GATE_STEP, __ATOMIC_SEQ_CST) & PYTHANC_GATE_CLOSED)
  {
    __atomic_fetch_sub(&pythanc_rest_busy, PYTHANC_GATE_STEP, __ATOMIC_SEQ_CST);
    return 0;
  }
  return 1;
}

static void pythanc_rest_leave(void)
{
  uint32_t expected = PYTHANC_GATE_PENDING;
  if (__atomic_sub_fetch(&pythanc_rest_busy, PYTHANC_GATE_STEP, __ATOMIC_SEQ_CST) == PYTHANC_GATE_PENDING &&
      __atomic_compare_exchange_n(&pythanc_rest_busy, &expected, PYTHANC_GATE_PENDING | PYTHANC_GATE_CLOSED, 0,
                                  __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
  {
    __atomic_fetch_add(&pythanc_rest_closed, 1, __ATOMIC_SEQ_CST);
    syscall(SYS_futex, &pythanc_rest_closed, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
  }
}

static int64_t pythanc_now_ns(void);

/* Called by Python (the registrar, one thread, GIL released): wait at most timeout_ms for a moment
   when no REST callback of pythanc runs, with the gate closed then; 1 if it is closed (open it
   again with pythanc_rest_open_gate() once the route is added), 0 after the timeout. */
static int pythanc_rest_close_gate(uint32_t timeout_ms)
{
  int64_t deadline = pythanc_now_ns() + (int64_t) timeout_ms * 1000000;
  __atomic_fetch_or(&pythanc_rest_busy, PYTHANC_GATE_PENDING, __ATOMIC_SEQ_CST);
  for (;;)
  {
    uint32_t closed = __atomic_load_n(&pythanc_rest_closed, __ATOMIC_SEQ_CST);
    uint32_t v = PYTHANC_GATE_PENDING;
    int64_t left;
    struct timespec t;
    if (__atomic_compare_exchange_n(&pythanc_rest_busy, &v, PYTHANC_GATE_PENDING | PYTHANC_GATE_CLOSED, 0,
                                    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) ||
        (v & PYTHANC_GATE_CLOSED))
      return 1;  /* closed here, or by the callback that left last */
    left = deadline - pythanc_now_ns();
    if (left <= 0)
    {
      /* Withdraw, unless a leaving callback has just closed the gate for us. */
      v = __atomic_load_n(&pythanc_rest_busy, __ATOMIC_SEQ_CST);
      for (;;)
      {
        if (v & PYTHANC_GATE_CLOSED)
          return 1;
        if (__atomic_compare_exchange_n(&pythanc_rest_busy, &v, v & ~PYTHANC_GATE_PENDING, 0,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
          return 0;
      }
    }
    if (left > 10000000)
      left = 10000000;  /* 10 ms at most, should a wake-up be missed */
    t.tv_sec = 0;
    t.tv_nsec = (long) left;
    syscall(SYS_futex, &pythanc_rest_closed, FUTEX_WAIT_PRIVATE, closed, &t, NULL, 0);
  }
}

static void pythanc_rest_open_gate(void)
{
  __atomic_fetch_and(&pythanc_rest_busy, ~(PYTHANC_GATE_PENDING | PYTHANC_GATE_CLOSED), __ATOMIC_SEQ_CST);
}

static OrthancPluginRestCallback pythanc_rest_entry_for(int32_t route);

/* Called by Python (the registrar): add a REST route, or a chunked REST route if `chunked`, with
   the gate closed for the registration alone (no return to Python in between, so that requests
   are refused for as short a time as possible); 1 if done, 0 if no moment came within timeout_ms.
   For a REST route, `route` is its number (pythanc_rest_entry_for); for a chunked one, `get` ...
   `put` are its callbacks (NULL: none), the reader callbacks being pythanc's. */
static int pythanc_rest_add_route(const char* regex, int32_t route, int chunked, OrthancPluginRestCallback get,
                                  OrthancPluginServerChunkedRequestReaderFactory post,
                                  OrthancPluginRestCallback del, OrthancPluginServerChunkedRequestReaderFactory put,
                                  uint32_t timeout_ms)
{
  if (pythanc_context == NULL || !pythanc_rest_close_gate(timeout_ms))
    return 0;
  if (chunked)
    OrthancPluginRegisterChunkedRestCallback(pythanc_context, regex, get, post, del, put,
                                             pythanc_OrthancPluginServerChunkedRequestReaderAddChunk,
                                             pythanc_OrthancPluginServerChunkedRequestReaderExecute,
                                             pythanc_OrthancPluginServerChunkedRequestReaderFinalize);
  else
    OrthancPluginRegisterRestCallbackNoLock(pythanc_context, regex, pythanc_rest_entry_for(route));
  pythanc_rest_open_gate();
  return 1;
}

/* A request that reached a pythanc route while the gate is closed. */
static OrthancPluginErrorCode pythanc_rest_refuse(OrthancPluginRestOutput* output)
{
  static const char body[] = "pythanc is adding a REST route to Orthanc; retry\n";
  if (pythanc_context != NULL)
  {
    OrthancPluginSetHttpHeader(pythanc_context, output, "Retry-After", "1");
    OrthancPluginSendHttpStatus(pythanc_context, output, 503, body, sizeof(body) - 1);
  }
  return OrthancPluginErrorCode_Success;
}


/*
 * REST dispatch threads ("Python": {"RestThreads": N}, default 2; 0 turns them off).
 *
 * With a few dozen HTTP threads each taking the GIL for every request, the GIL changes hands
 * at every request, each time on a core whose caches hold civetweb's data rather than Python's:
 * measured on 2 cores, a trivial Python route cost ~40 us of CPU per request that way, against
 * ~8 us for the same Python code run in a loop.  Instead, an HTTP thread queues its request here
 * and sleeps; N threads of the plugin take the requests in order and call Python, one after the
 * other, without handing the GIL to anybody while the queue is not empty.  Python still sees one
 * call of pythanc_rest_packed() per request, with the same arguments.
 *
 * No request waits behind a slow callback: a request still queued after PYTHANC_ESCALATE_NS wakes
 * another idle dispatch thread, or, if they are all busy (callbacks blocked in SDK calls, long
 * computations), is taken back and run by its own HTTP thread, as with RestThreads = 0.  A REST
 * call made from a callback (orthanc.RestApiGetAfterPlugins of a Python route) runs on the calling
 * thread.  A lone request (its HTTP thread the only one inside a pythanc route, nothing queued or
 * running) runs on its HTTP thread: waking a dispatch thread would only add latency to it, and a
 * client that sends one request after the other (the common case of a script's caller) gets the
 * latency of a direct call.
 */
#define PYTHANC_ESCALATE_NS 1000000L
enum { PYTHANC_QUEUED = 0, PYTHANC_RUNNING = 1, PYTHANC_DONE = 2 };

typedef struct pythanc_rest_call
{
  OrthancPluginRestOutput* output;
  int32_t route;                       /* see pythanc_rest_entry_for(); -1: unknown */
  int32_t method;
  uint32_t groups, get, headers;
  const char* strings;
  size_t size;
  const char* body;
  uint32_t body_size;
  const char* payload;                 /* the HTTP authentication callback's payload (SDK 1.12.9+) */
  uint32_t payload_size;
  char* answer;
  uint32_t capacity;
  int64_t result;
  uint32_t state;                      /* a futex word: PYTHANC_QUEUED, _RUNNING, _DONE */
  struct pythanc_rest_call* next;
} pythanc_rest_call;

static struct
{
  pthread_mutex_t lock;
  pthread_cond_t wake;                 /* idle dispatch threads wait here */
  pthread_cond_t changed;              /* a call ended or a thread exited (for the stop) */
  pythanc_rest_call* head;
  pythanc_rest_call* tail;
  unsigned generation;                 /* a thread of an older generation exits */
  unsigned alive, idle, running, wakeups;
  unsigned alone;                      /* an HTTP thread runs its request itself (see below) */
} pythanc_pool = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
                   NULL, NULL, 0, 0, 0, 0, 0, 0 };
static int pythanc_pool_on = 0;        /* under pythanc_pool.lock */
static __thread int pythanc_runs_rest = 0;   /* this thread is running a REST callback */

static int64_t pythanc_call_python(const pythanc_rest_call* c)
{
  return pythanc_rest_packed(c->output, c->route, c->method, c->groups, c->get, c->headers, c->strings,
                             c->size, c->body, c->body_size, c->payload, c->payload_size, c->answer,
                             c->capacity);
}

/* Run a request on this (HTTP) thread; a REST call that its callback makes runs here too. */
static int64_t pythanc_run_here(const pythanc_rest_call* c)
{
  int64_t result;
  int before = pythanc_runs_rest;
  pythanc_runs_rest = 1;
  result = pythanc_call_python(c);
  pythanc_runs_rest = before;
  return result;
}

static void pythanc_futex_wake(uint32_t* word)
{
  syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Wake one idle dispatch thread that nobody is already waking.  Under the lock. */
static int pythanc_pool_wake_one(void)
{
  if (pythanc_pool.idle > pythanc_pool.wakeups)
  {
    pythanc_pool.wakeups++;
    pthread_cond_signal(&pythanc_pool.wake);
    return 1;
  }
  return 0;
}

static void* pythanc_dispatch_thread(void* arg)
{
  unsigned generation = (unsigned) (uintptr_t) arg;
  pythanc_runs_rest = 1;
  pthread_setname_np(pthread_self(), "pythanc-rest");  /* as seen in /proc/PID/task/TID/comm */
  pthread_mutex_lock(&pythanc_pool.lock);
  for (;;)
  {
    pythanc_rest_call* c;
    while (pythanc_pool.head == NULL && pythanc_pool.generation == generation)
    {
      pythanc_pool.idle++;
      while (pythanc_pool.wakeups == 0 && pythanc_pool.generation == generation)
        pthread_cond_wait(&pythanc_pool.wake, &pythanc_pool.lock);
      pythanc_pool.idle--;
      if (pythanc_pool.wakeups > 0)
        pythanc_pool.wakeups--;
    }
    if (pythanc_pool.generation != generation)
      break;  /* stopped: the queue is empty (requests are not queued once stopping) */
    c = pythanc_pool.head;
    pythanc_pool.head = c->next;
    if (pythanc_pool.head == NULL)
      pythanc_pool.tail = NULL;
    c->state = PYTHANC_RUNNING;
    pythanc_pool.running++;
    pthread_mutex_unlock(&pythanc_pool.lock);
    c->result = pythanc_call_python(c);
    __atomic_store_n(&c->state, PYTHANC_DONE, __ATOMIC_RELEASE);
    pythanc_futex_wake(&c->state);  /* c belongs to the HTTP thread from here on */
    pthread_mutex_lock(&pythanc_pool.lock);
    pythanc_pool.running--;
    pthread_cond_broadcast(&pythanc_pool.changed);
  }
  pythanc_pool.alive--;
  pthread_cond_broadcast(&pythanc_pool.changed);
  pthread_mutex_unlock(&pythanc_pool.lock);
  return NULL;
}

/* Called by Python (pythanc/callbacks/rest.py) once the scripts are loaded; returns the number of
   threads started. */
static unsigned pythanc_start_rest_threads(unsigned n)
{
  unsigned i, started = 0;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_mutex_lock(&pythanc_pool.lock);
  for (i = 0; i < n; i++)
  {
    pthread_t t;
    if (pthread_create(&t, &attr, pythanc_dispatch_thread,
                       (void*) (uintptr_t) pythanc_pool.generation) != 0)
      break;
    pythanc_pool.alive++;
    started++;
  }
  pythanc_pool_on = (started > 0);
  pthread_mutex_unlock(&pythanc_pool.lock);
  pthread_attr_destroy(&attr);
  return started;
}

/* At OrthancPluginFinalize: no more queueing; the queue (normally empty: Orthanc has stopped serving
   HTTP) is served, then the threads exit.  A thread stuck in a callback is waited for at most 10 s,
   then left behind (it exits when its callback returns). */
static void pythanc_stop_rest_threads(void)
{
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 10;
  pthread_mutex_lock(&pythanc_pool.lock);
  pythanc_pool_on = 0;
  while (pythanc_pool.head != NULL &&
         pthread_cond_timedwait(&pythanc_pool.changed, &pythanc_pool.lock, &deadline) != ETIMEDOUT)
    ;
  pythanc_pool.generation++;
  pythanc_pool.wakeups = 0;
  pthread_cond_broadcast(&pythanc_pool.wake);
  while (pythanc_pool.alive > 0 &&
         pthread_cond_timedwait(&pythanc_pool.changed, &pythanc_pool.lock, &deadline) != ETIMEDOUT)
    ;
  pthread_mutex_unlock(&pythanc_pool.lock);
}

static int64_t pythanc_now_ns(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t) t.tv_sec * 1000000000 + t.tv_nsec;
}

/* The caller has entered the gate (pythanc_rest_enter), so pythanc_rest_busy counts it. */
static int64_t pythanc_dispatch(pythanc_rest_call* c)
{
  pthread_mutex_lock(&pythanc_pool.lock);
  if (!pythanc_pool_on || pythanc_runs_rest)
  {
    pthread_mutex_unlock(&pythanc_pool.lock);
    return pythanc_call_python(c);
  }
  if (pythanc_pool.head == NULL && pythanc_pool.running == 0 && pythanc_pool.alone == 0 &&
      __atomic_load_n(&pythanc_rest_busy, __ATOMIC_SEQ_CST) / PYTHANC_GATE_STEP == 1)
  {
    /* This thread is the only one inside a pythanc route: waking a dispatch thread would only add
       latency.  Requests that come meanwhile are queued as usual. */
    int64_t result;
    pythanc_pool.alone = 1;
    pthread_mutex_unlock(&pythanc_pool.lock);
    result = pythanc_run_here(c);
    pthread_mutex_lock(&pythanc_pool.lock);
    pythanc_pool.alone = 0;
    pthread_mutex_unlock(&pythanc_pool.lock);
    return result;
  }
  c->state = PYTHANC_QUEUED;
  c->next = NULL;
  if (pythanc_pool.tail != NULL)
    pythanc_pool.tail->next = c;
  else
    pythanc_pool.head = c;
  pythanc_pool.tail = c;
  if (pythanc_pool.running + pythanc_pool.wakeups == 0)
    pythanc_pool_wake_one();
  pthread_mutex_unlock(&pythanc_pool.lock);
  for (;;)
  {
    struct timespec timeout = { 0, PYTHANC_ESCALATE_NS };
    uint32_t state = __atomic_load_n(&c->state, __ATOMIC_ACQUIRE);
    if (state == PYTHANC_DONE)
      return c->result;
    if (syscall(SYS_futex, &c->state, FUTEX_WAIT_PRIVATE, state,
                state == PYTHANC_QUEUED ? &timeout : NULL, NULL, 0) == -1 && errno == ETIMEDOUT)
    {
      pthread_mutex_lock(&pythanc_pool.lock);
      if (c->state == PYTHANC_QUEUED && !pythanc_pool_wake_one())
      {
        /* Every dispatch thread is busy: take the request back and run it here. */
        pythanc_rest_call** link = &pythanc_pool.head;
        pythanc_rest_call* previous = NULL;
        while (*link != c)
        {
          previous = *link;
          link = &(*link)->next;
        }
        *link = c->next;
        if (pythanc_pool.tail == c)
          pythanc_pool.tail = previous;
        pthread_mutex_unlock(&pythanc_pool.lock);
        return pythanc_run_here(c);
      }
      pthread_mutex_unlock(&pythanc_pool.lock);
    }
  }
}

static OrthancPluginErrorCode pythanc_rest_route(OrthancPluginRestOutput* output, const char* url,
                                                 const OrthancPluginHttpRequest* request, int32_t route)
{
  int64_t r;
  uint32_t nget = (request->method == OrthancPluginHttpMethod_Get) ? request->getCount : 0;
  size_t url_size = strlen(url) + 1;
  size_t size = url_size
    + pythanc_strings_size(request->groupsCount, request->groups, NULL)
    + pythanc_strings_size(nget, request->getKeys, request->getValues)
    + pythanc_strings_size(request->headersCount, request->headersKeys, request->headersValues);
  char* p;
  if (!pythanc_rest_enter())
    return pythanc_rest_refuse(output);
  if (size > pythanc_scratch_size)
  {
    char* bigger = (char*) realloc(pythanc_scratch, size);
    if (bigger == NULL)
    {
      pythanc_rest_leave();
      return OrthancPluginErrorCode_NotEnoughMemory;
    }
    pythanc_scratch = bigger;
    pythanc_scratch_size = size;
  }
  p = pythanc_scratch;
  memcpy(p, url, url_size);
  p += url_size;
  p = pythanc_strings_copy(p, request->groupsCount, request->groups, NULL);
  p = pythanc_strings_copy(p, nget, request->getKeys, request->getValues);
  p = pythanc_strings_copy(p, request->headersCount, request->headersKeys, request->headersValues);
  if (pythanc_answer == NULL)
    pythanc_answer = (char*) malloc(PYTHANC_ANSWER_CAPACITY);  /* NULL: no deferred answers */
  {
    pythanc_rest_call c;
    c.output = output;
    c.route = route;
    c.method = (int32_t) request->method;
    c.groups = request->groupsCount;
    c.get = nget;
    c.headers = request->headersCount;
    c.strings = pythanc_scratch;
    c.size = size - 1;
    c.body = (const char*) request->body;
    c.body_size = request->bodySize;
#if ORTHANC_PLUGINS_VERSION_IS_ABOVE(1, 12, 9)
    c.payload = (const char*) request->authenticationPayload;
    c.payload_size = request->authenticationPayload == NULL ? 0 : request->authenticationPayloadSize;
#else
    c.payload = NULL;
    c.payload_size = 0;
#endif
    c.answer = pythanc_answer;
    c.capacity = pythanc_answer == NULL ? 0 : PYTHANC_ANSWER_CAPACITY;
    r = pythanc_dispatch(&c);
  }
  pythanc_rest_leave();
  if (pythanc_scratch_size > PYTHANC_SCRATCH_KEEP)
  {
    free(pythanc_scratch);
    pythanc_scratch = NULL;
    pythanc_scratch_size = 0;
  }
  if (r < 0)
    return (OrthancPluginErrorCode) (-r);
  if (r > 0 && pythanc_answer != NULL && pythanc_context != NULL)
  {
    size_t body_size = (size_t) (r - 1);
    size_t mime_size = strnlen(pythanc_answer, PYTHANC_ANSWER_CAPACITY);
    if (mime_size + 1 + body_size <= PYTHANC_ANSWER_CAPACITY)
      OrthancPluginAnswerBuffer(pythanc_context, output, pythanc_answer + mime_size + 1,
                                (uint32_t) body_size, pythanc_answer);
  }
  return OrthancPluginErrorCode_Success;
}

/*
 * One C entry point per route: Orthanc has already matched the request's URI against the route's
 * regular expression, so the entry point registered for route N (the Nth distinct expression
 * registered since the plugin started) tells Python which one matched, and Python does not match
 * the URI again.  pythanc_rest_entry (route -1) serves the expressions beyond the first
 * PYTHANC_ROUTE_ENTRIES; Python then finds the route by matching, as before.
 */
static OrthancPluginErrorCode pythanc_rest_entry(OrthancPluginRestOutput* output, const char* url,
                                                 const OrthancPluginHttpRequest* request)
{
  return pythanc_rest_route(output, url, request, -1);
}

#define PYTHANC_ROUTE(a, b) \
  static OrthancPluginErrorCode pythanc_rest_entry_##a##b(OrthancPluginRestOutput* output, \
      const char* url, const OrthancPluginHttpRequest* request) \
  { return pythanc_rest_route(output, url, request, (a) * 8 + (b)); }
#define PYTHANC_ROUTES(a) PYTHANC_ROUTE(a, 0) PYTHANC_ROUTE(a, 1) PYTHANC_ROUTE(a, 2) PYTHANC_ROUTE(a, 3) \
  PYTHANC_ROUTE(a, 4) PYTHANC_ROUTE(a, 5) PYTHANC_ROUTE(a, 6) PYTHANC_ROUTE(a, 7)
PYTHANC_ROUTES(0) PYTHANC_ROUTES(1) PYTHANC_ROUTES(2) PYTHANC_ROUTES(3)
PYTHANC_ROUTES(4) PYTHANC_ROUTES(5) PYTHANC_ROUTES(6) PYTHANC_ROUTES(7)
#define PYTHANC_ENTRIES(a) pythanc_rest_entry_##a##0, pythanc_rest_entry_##a##1, pythanc_rest_entry_##a##2, \
  pythanc_rest_entry_##a##3, pythanc_rest_entry_##a##4, pythanc_rest_entry_##a##5, \
  pythanc_rest_entry_##a##6, pythanc_rest_entry_##a##7
#define PYTHANC_ROUTE_ENTRIES 64
static const OrthancPluginRestCallback pythanc_rest_entries[PYTHANC_ROUTE_ENTRIES] = {
  PYTHANC_ENTRIES(0), PYTHANC_ENTRIES(1), PYTHANC_ENTRIES(2), PYTHANC_ENTRIES(3),
  PYTHANC_ENTRIES(4), PYTHANC_ENTRIES(5), PYTHANC_ENTRIES(6), PYTHANC_ENTRIES(7)
};

/* Called by Python (pythanc/callbacks/rest.py) to register route number `route`. */
static OrthancPluginRestCallback pythanc_rest_entry_for(int32_t route)
{
  if (route >= 0 && route < PYTHANC_ROUTE_ENTRIES)
    return pythanc_rest_entries[route];
  return pythanc_rest_entry;
}
