/*
 * pythanc: bootstrap, the C that must run before Python exists (the plugin library's hand-written C
 * is this file and rest_dispatch.c, compiled as one unit after cffi's glue, this one first).
 *
 * What this file owns, none of which can be done in Python:
 *  - OrthancPluginGetName / OrthancPluginGetVersion answer before Python exists;
 *  - a constructor makes libpython's symbols global (Orthanc loads plugins with RTLD_LOCAL, so C
 *    extension modules imported later would not find them) and pins this library in memory
 *    (RTLD_NODELETE), so that /tools/reset, which unloads and reloads plugins, finds Python's
 *    state intact instead of a freshly mapped copy of cffi's static data;
 *  - Python is initialised with the interpreter recorded at build time (virtualenvs work), with
 *    no Python signal handlers, and the GIL is then released.
 *  - PythonVerbose / Python.Verbose read from the configuration JSON before Python starts (a tiny
 *    JSON scanner), since Python's verbose flag exists only if set before it starts;
 *  - the four functions Orthanc looks for in a plugin (Initialize, Finalize, GetName, GetVersion).
 * Everything else is Python: OrthancPluginInitialize hands the context to pythanc_initialize()
 * (pythanc/lifecycle/plugin.py).  REST requests enter through rest_dispatch.c.
 *
 * Copyright (C) 2026 the pythanc authors. GPL-3.0-or-later.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* OrthancCPlugin.h: included by the build, before this file (the header that was parsed) */

/* PYTHANC_VERSION, PYTHANC_LIBPYTHON, PYTHANC_PYTHON_EXECUTABLE come from the build (-D). */

static OrthancPluginContext* pythanc_context = NULL;
static int pythanc_python_ready = 0;

static void pythanc_stop_rest_threads(void);  /* rest_dispatch.c */

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

/*
 * PythonVerbose / Python.Verbose turn on Python's own verbose flag (its import trace on stderr),
 * which only exists if it is set before Python starts, that is before pythanc can read the
 * configuration in Python.  So C looks at these two options only, in the configuration JSON that
 * Orthanc gives (well-formed: JsonCpp wrote it).  Only the JSON value `true` counts; Python
 * checks the options' types again afterwards (pythanc/core/config.py) and refuses wrong ones.
 */
static const char* pythanc_json_ws(const char* p)
{
  while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
    p++;
  return p;
}

/* p is on the opening quote; returns the character after the closing quote, or NULL. */
static const char* pythanc_json_string_end(const char* p)
{
  for (p++; *p != '"'; p++)
  {
    if (*p == '\0')
      return NULL;
    if (*p == '\\' && *++p == '\0')
      return NULL;
  }
  return p + 1;
}

/* Skips one value (a string, a number, a literal, or a whole object or array). */
static const char* pythanc_json_skip(const char* p)
{
  int depth = 0;
  do
  {
    p = pythanc_json_ws(p);
    if (*p == '\0')
      return NULL;
    else if (*p == '"')
    {
      if ((p = pythanc_json_string_end(p)) == NULL)
        return NULL;
    }
    else if (*p == '{' || *p == '[')
      depth++, p++;
    else if (*p == '}' || *p == ']')
    {
      if (--depth < 0)
        return NULL;
      p++;
    }
    else if (*p == ',' || *p == ':')
      p++;
    else
      while (*p != '\0' && strchr(",:]} \t\r\n", *p) == NULL)
        p++;
  } while (depth > 0);
  return p;
}

/* The value of member `key` of the object at p, or NULL (p NULL, not an object, no such key). */
static const char* pythanc_json_member(const char* p, const char* key)
{
  size_t len = strlen(key);
  if (p == NULL || *(p = pythanc_json_ws(p)) != '{')
    return NULL;
  p++;
  for (;;)
  {
    const char* name;
    const char* end;
    p = pythanc_json_ws(p);
    if (*p != '"' || (end = pythanc_json_string_end(p)) == NULL)
      return NULL;
    name = p + 1;
    p = pythanc_json_ws(end);
    if (*p != ':')
      return NULL;
    p = pythanc_json_ws(p + 1);
    if ((size_t) (end - 1 - name) == len && memcmp(name, key, len) == 0)
      return p;
    if ((p = pythanc_json_skip(p)) == NULL)
      return NULL;
    p = pythanc_json_ws(p);
    if (*p != ',')
      return NULL;
    p++;
  }
}

static int pythanc_json_true(const char* p)
{
  return p != NULL && strncmp(p, "true", 4) == 0;
}

static int pythanc_verbose_configured(void)
{
  int verbose = 0;
  char* json = OrthancPluginGetConfiguration(pythanc_context);
  if (json != NULL)
  {
    verbose = pythanc_json_true(pythanc_json_member(json, "PythonVerbose")) ||
      pythanc_json_true(pythanc_json_member(pythanc_json_member(json, "Python"), "Verbose"));
    OrthancPluginFreeString(pythanc_context, json);
  }
  return verbose;
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
  config.verbose = pythanc_verbose_configured();  /* Python's import trace, as the official plugin */
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
  /* pythanc_initialize() is Python (pythanc/lifecycle/plugin.py); it returns 1 on success.  If Python
     cannot even start the plugin's code, cffi returns 0 and has printed the traceback. */
  return pythanc_initialize(context) == 1 ? 0 : -1;
}

__attribute__((visibility("default")))
void OrthancPluginFinalize(void)
{
  if (pythanc_python_ready)
  {
    pythanc_finalize();
    pythanc_stop_rest_threads();
  }
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
