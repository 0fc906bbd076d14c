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
