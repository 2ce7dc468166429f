#include <Python.h>

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speedups", NULL, -1, NULL};

PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&module); }
