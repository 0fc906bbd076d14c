/*
 * pythanc: the C part of the plugin library (the only hand-written C).
 *
 * What cannot be done in Python:
 *  - OrthancPluginGetName / OrthancPluginGetVersion answer before Python exists;
 *  - a constructor makes libpython's symbols global (Orthanc loads plugins with RTLD_LOCAL, so C
 *    extension modules imported later would not find them) and pins this library in memory
 *    (RTLD_NODELETE), so that /tools/reset, which unloads and reloads plugins, finds Python's
 *    state intact instead of a freshly mapped copy of cffi's static data;
 *  - Python is initialised with the interpreter recorded at build time (virtualenvs work), with
 *    no Python signal handlers, and the GIL is then released.
 * Everything else is Python: OrthancPluginInitialize hands the context to pythanc_initialize().
 *
 * Copyright (C) 2026 the pythanc authors. GPL-3.0-or-later.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <orthanc/OrthancCPlugin.h>

/* PYTHANC_VERSION, PYTHANC_LIBPYTHON, PYTHANC_PYTHON_EXECUTABLE come from the build (-D). */

static OrthancPluginContext* pythanc_context = NULL;
static int pythanc_python_ready = 0;

__attribute__((constructor))
static void pythanc_constructor(void)
{
  Dl_info info;
  /* Make libpython's symbols global. */
  void* h = dlopen(PYTHANC_LIBPYTHON, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
  (void) h;  /* kept open on purpose */
  /* Never unload this library: Python's state refers to its code and data. */
  if (dladdr((void*) &pythanc_constructor, &info) && info.dli_fname != NULL)
  {
    void* self = dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
    (void) self;
  }
}

static int pythanc_start_python(void)
{
  PyStatus status;
  PyConfig config;
  const char* exe = getenv("PYTHANC_PYTHON");
  if (exe == NULL || exe[0] == '\0')
    exe = PYTHANC_PYTHON_EXECUTABLE;

  if (Py_IsInitialized())
    return 0;

  PyConfig_InitPythonConfig(&config);
  config.install_signal_handlers = 0;
  config.buffered_stdio = 0;
  config.parse_argv = 0;
  status = PyConfig_SetBytesString(&config, &config.executable, exe);
  if (!PyStatus_Exception(status))
    status = PyConfig_SetBytesString(&config, &config.program_name, exe);
  if (!PyStatus_Exception(status))
  {
    char* argv[] = { (char*) "" };
    status = PyConfig_SetBytesArgv(&config, 1, argv);
  }
  if (!PyStatus_Exception(status))
    status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(status))
  {
    char msg[1024];
    snprintf(msg, sizeof(msg), "pythanc: cannot initialise Python (%s): %s",
             exe, status.err_msg ? status.err_msg : "unknown error");
    OrthancPluginLogError(pythanc_context, msg);
    return -1;
  }
  PyEval_SaveThread();  /* release the GIL: every entry from Orthanc takes it again */
  return 0;
}

/*
 * REST requests: Orthanc calls pythanc_rest_entry() (registered by pythanc/_callbacks.py), which
 * copies the request's strings (URI, groups, GET arguments, headers) into one NUL-separated block
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

static OrthancPluginErrorCode pythanc_rest_entry(OrthancPluginRestOutput* output, const char* url,
                                                 const OrthancPluginHttpRequest* request)
{
  int64_t r;
  uint32_t nget = (request->method == OrthancPluginHttpMethod_Get) ? request->getCount : 0;
  size_t url_size = strlen(url) + 1;
  size_t size = url_size
    + pythanc_strings_size(request->groupsCount, request->groups, NULL)
    + pythanc_strings_size(nget, request->getKeys, request->getValues)
    + pythanc_strings_size(request->headersCount, request->headersKeys, request->headersValues);
  char* p;
  if (size > pythanc_scratch_size)
  {
    char* bigger = (char*) realloc(pythanc_scratch, size);
    if (bigger == NULL)
      return OrthancPluginErrorCode_NotEnoughMemory;
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
  r = pythanc_rest_packed(output, (int32_t) request->method, request->groupsCount, nget,
                          request->headersCount, pythanc_scratch, size - 1,
                          (const char*) request->body, request->bodySize,
                          pythanc_answer, pythanc_answer == NULL ? 0 : PYTHANC_ANSWER_CAPACITY);
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

__attribute__((visibility("default")))
int32_t OrthancPluginInitialize(OrthancPluginContext* context)
{
  pythanc_context = context;
  if (!OrthancPluginCheckVersion(context))
  {
    char msg[512];
    snprintf(msg, sizeof(msg),
             "pythanc: this Orthanc (%s) is older than the SDK pythanc was built for (%d.%d.%d): "
             "rebuild pythanc against this Orthanc's orthanc-dev, or upgrade Orthanc",
             context->orthancVersion, ORTHANC_PLUGINS_MINIMAL_MAJOR_NUMBER,
             ORTHANC_PLUGINS_MINIMAL_MINOR_NUMBER, ORTHANC_PLUGINS_MINIMAL_REVISION_NUMBER);
    OrthancPluginLogError(context, msg);
    return -1;
  }
  if (!pythanc_python_ready)
  {
    if (pythanc_start_python() != 0)
      return -1;
    pythanc_python_ready = 1;
  }
  /* pythanc_initialize() is Python (pythanc/_plugin.py); it returns 1 on success.  If Python
     cannot even start the plugin's code, cffi returns 0 and has printed the traceback. */
  return pythanc_initialize(context) == 1 ? 0 : -1;
}

__attribute__((visibility("default")))
void OrthancPluginFinalize(void)
{
  if (pythanc_python_ready)
    pythanc_finalize();
  pythanc_context = NULL;
  /* Python is not finalised: see README, "Shutdown and /tools/reset". */
}

__attribute__((visibility("default")))
const char* OrthancPluginGetName(void)
{
  return "python";
}

__attribute__((visibility("default")))
const char* OrthancPluginGetVersion(void)
{
  return PYTHANC_VERSION;
}
